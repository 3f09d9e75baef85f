import type { ChartOptions, TooltipItem } from 'chart.js';

/** The app's colours (src/styles.css custom properties) for the canvas, which CSS cannot reach. */
export interface ChartTheme {
  text: string;
  muted: string;
  grid: string;
  font: string;
  succeeded: string;
  failed: string;
  cancelled: string;
  depth: string;
  p50: string;
  p95: string;
}

const FALLBACK: ChartTheme = {
  text: '#1c232b',
  muted: '#58606b',
  grid: '#dde1e7',
  font: 'system-ui, sans-serif',
  succeeded: '#1d653b',
  failed: '#a6231c',
  cancelled: '#5f5567',
  depth: '#29629b',
  p50: '#265a8f',
  p95: '#7a5000',
};

/** Read the theme as the page shows it now (light or dark scheme). */
export function readTheme(): ChartTheme {
  const root = globalThis.document?.documentElement;
  const style = root && typeof getComputedStyle === 'function' ? getComputedStyle(root) : null;
  const read = (name: string, fallback: string): string =>
    style?.getPropertyValue(name).trim() || fallback;
  return {
    text: read('--text', FALLBACK.text),
    muted: read('--muted', FALLBACK.muted),
    grid: read('--border', FALLBACK.grid),
    font: read('--font', FALLBACK.font),
    succeeded: read('--st-succeeded', FALLBACK.succeeded),
    failed: read('--st-failed', FALLBACK.failed),
    cancelled: read('--st-cancelled', FALLBACK.cancelled),
    depth: read('--accent', FALLBACK.depth),
    p50: read('--st-running', FALLBACK.p50),
    p95: read('--st-retrying', FALLBACK.p95),
  };
}

export interface BarOptions {
  /** Stack the datasets (jobs per minute by status). */
  stacked?: boolean;
  /** Bars along the x axis, one row per category (queues, tasks). */
  horizontal?: boolean;
  /** A logarithmic value axis: run times of different tasks span orders of magnitude. */
  logarithmic?: boolean;
  /** How values read on the axis and in tooltips (counts by default). */
  format?: (value: number) => string;
  /** Animate changes (off when the user prefers reduced motion). */
  animate: boolean;
}

/** 1 for 1, 10, 100…; 2 for 20, 200…; 5 for 0.5, 50… */
function mantissa(value: number): number {
  return Math.round(value / 10 ** Math.floor(Math.log10(value)));
}

/**
 * Tick labels of a logarithmic axis: the powers of ten only (1 ms, 10 ms, 100 ms, 1 s),
 * or 1-2-5 steps when the range holds fewer than two of them. Every tick still gets its
 * grid line; the labels just do not run into each other.
 */
function logTickLabel(format: (value: number) => string) {
  return (value: number | string, _index: number, ticks: { value: number }[]): string => {
    const n = Number(value);
    if (!(n > 0)) {
      return '';
    }
    const powers = ticks.filter((tick) => tick.value > 0 && mantissa(tick.value) === 1).length;
    const shown = powers >= 2 ? [1] : [1, 2, 5];
    return shown.includes(mantissa(n)) ? format(n) : '';
  };
}

/** Options of a bar chart in the app's look: its font (12 px at least), colours and grid. */
export function barOptions(theme: ChartTheme, options: BarOptions): ChartOptions<'bar'> {
  const font = { family: theme.font, size: 12 };
  const format = options.format ?? ((value: number) => String(value));
  const valueAxis = {
    type: options.logarithmic ? 'logarithmic' : 'linear',
    stacked: !!options.stacked,
    beginAtZero: !options.logarithmic,
    ticks: {
      color: theme.muted,
      font,
      precision: 0,
      maxTicksLimit: 6,
      callback: options.logarithmic
        ? logTickLabel(format)
        : (value: number | string) => format(Number(value)),
    },
    grid: { color: theme.grid },
    border: { color: theme.grid },
  };
  const categoryAxis = {
    type: 'category',
    stacked: !!options.stacked,
    ticks: { color: theme.muted, font, autoSkip: true, maxRotation: 0 },
    grid: { display: false },
    border: { color: theme.grid },
  };
  const valueKey = options.horizontal ? 'x' : 'y';
  return {
    responsive: true,
    maintainAspectRatio: false,
    indexAxis: options.horizontal ? 'y' : 'x',
    animation: options.animate ? { duration: 250 } : false,
    scales: options.horizontal
      ? { x: valueAxis, y: categoryAxis }
      : { x: categoryAxis, y: valueAxis },
    plugins: {
      legend: { labels: { color: theme.text, font, boxWidth: 12, boxHeight: 12 } },
      tooltip: {
        bodyFont: font,
        titleFont: font,
        callbacks: {
          label: (item: TooltipItem<'bar'>) =>
            `${item.dataset.label ?? ''}: ${format(Number(item.parsed[valueKey]))}`,
        },
      },
    },
  } as ChartOptions<'bar'>;
}
