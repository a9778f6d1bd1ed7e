// The live loss chart of a job (uPlot): raw loss per step and its moving average.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';
import { t } from './i18n.js';

function movingAverage(ys: number[], n = 10): number[] {
  const out: number[] = [];
  let s = 0;
  ys.forEach((y, i) => { s += y; if (i >= n) s -= ys[i - n]; out.push(s / Math.min(i + 1, n)); });
  return out;
}

export function LossChart({ points }: { points: [number, number][] }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const data: uPlot.AlignedData = [xs, ys, movingAverage(ys)];
    if (!plot.current && el.current) {
      plot.current = new uPlot({
        width: Math.max(300, el.current.clientWidth), height: 220, scales: { x: { time: false } },
        series: [{ label: t('jobs.step') }, { label: t('jobs.loss'), stroke: '#7aa7ff', width: 1 }, { label: t('jobs.lossAvg'), stroke: '#ff9f43', width: 2 }],
        axes: [{ stroke: '#999' }, { stroke: '#999' }],
      }, data, el.current);
    } else plot.current?.setData(data);
  }, [points]);
  useEffect(() => () => { plot.current?.destroy(); plot.current = null; }, []);
  return html`<div class="loss-chart" data-testid="loss-chart" data-points=${points.length} ref=${el}></div>`;
}
