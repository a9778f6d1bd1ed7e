// Embedding lookup: rows of a table picked by integer ids; the gradient flows to the table only.
import { record } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { computeType, like } from './util.js';

export function embedding(ids: Tensor, table: Tensor): Tensor {
  if (ids.dtype !== 'i32') throw new Error(`embedding: ids must be i32, got ${ids.dtype}`);
  if (table.rank !== 2) throw new Error(`embedding: table must be [vocab, dim], got [${table.shape}]`);
  const dt = computeType('embedding', table);
  const [vocab, dim] = table.shape;
  const be = table.backend;
  const y = like(table, be.embedding(ids.storage, table.storage, ids.size, dim, dt), [...ids.shape, dim]);
  return record(y, 'embedding', [table], (gy) => [like(table, be.embeddingGrad(ids.storage, gy.storage, ids.size, vocab, dim, dt), table.shape)]);
}
