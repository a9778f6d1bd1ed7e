// Stable Diffusion 1.x component configs (as in runwayml/stable-diffusion-v1-5), used when a
// single-file checkpoint comes without configs.
export const SD15_UNET_CONFIG = {
  in_channels: 4, out_channels: 4, block_out_channels: [320, 640, 1280, 1280],
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn', layers_per_block: 2, attention_head_dim: 8, cross_attention_dim: 768,
  norm_num_groups: 32, norm_eps: 1e-5, use_linear_projection: false, flip_sin_to_cos: true, freq_shift: 0, downsample_padding: 1,
};
export const SD15_VAE_CONFIG = {
  in_channels: 3, out_channels: 3, latent_channels: 4, block_out_channels: [128, 256, 512, 512], layers_per_block: 2,
  norm_num_groups: 32, scaling_factor: 0.18215,
};
export const SD15_TEXT_CONFIG = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, max_position_embeddings: 77,
  vocab_size: 49408, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, eos_token_id: 2,
};
