// The loss curve as a small standalone SVG (raw loss and a moving average).
export function lossPlotSvg(points: { step: number; loss: number }[], title = 'training loss'): string {
  const W = 640, H = 320, L = 56, R = 16, T = 28, B = 36;
  if (!points.length) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="20" y="40">no data</text></svg>`;
  const xs = points.map((p) => p.step), ys = points.map((p) => p.loss);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const lo = Math.min(...ys), hi = Math.max(...ys, lo + 1e-9);
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => T + (1 - (y - lo) / (hi - lo)) * (H - T - B);
  const line = (pts: [number, number][]) => pts.map(([x, y], i) => `${i ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
  const k = Math.max(1, Math.round(points.length / 20));
  const avg: [number, number][] = points.map((p, i) => {
    const win = ys.slice(Math.max(0, i - k + 1), i + 1);
    return [p.step, win.reduce((a, b) => a + b, 0) / win.length];
  });
  const ticks = [lo, (lo + hi) / 2, hi].map((v) => `<text x="${L - 6}" y="${py(v) + 4}" font-size="11" text-anchor="end">${v.toPrecision(3)}</text><line x1="${L}" x2="${W - R}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>${ticks}
<text x="${L}" y="18" font-size="13">${title}</text>
<text x="${W - R}" y="${H - 8}" font-size="11" text-anchor="end">step ${x1}</text><text x="${L}" y="${H - 8}" font-size="11">step ${x0}</text>
<path d="${line(points.map((p) => [p.step, p.loss]))}" fill="none" stroke="#9bb7e0" stroke-width="1"/>
<path d="${line(avg)}" fill="none" stroke="#1f4e9c" stroke-width="2"/>
</svg>
`;
}
