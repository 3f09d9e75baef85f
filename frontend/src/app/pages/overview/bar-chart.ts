import { ChangeDetectionStrategy, Component, input } from '@angular/core';
import {
  BarController,
  BarElement,
  CategoryScale,
  ChartData,
  ChartOptions,
  Legend,
  LinearScale,
  LogarithmicScale,
  Tooltip,
} from 'chart.js';
import { BaseChartDirective, provideCharts } from 'ng2-charts';

/**
 * One bar chart of the overview. Chart.js comes with this component alone, and only the
 * parts bar charts use: the overview shows it in a `@defer` block, so its code loads after
 * the figures are on screen and never holds them up.
 */
@Component({
  selector: 'app-bar-chart',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [BaseChartDirective],
  providers: [
    provideCharts({
      registerables: [
        BarController,
        BarElement,
        CategoryScale,
        LinearScale,
        LogarithmicScale,
        Legend,
        Tooltip,
      ],
    }),
  ],
  // The chart fills the box its page sized (.chart): nothing moves when it arrives.
  styles: ':host { display: block; position: relative; width: 100%; height: 100%; }',
  template: `<canvas
    baseChart
    type="bar"
    role="img"
    [attr.data-testid]="testId()"
    [data]="data()"
    [options]="options()"
    [attr.aria-label]="label()"
  ></canvas>`,
})
export class BarChart {
  readonly data = input.required<ChartData<'bar'>>();
  readonly options = input.required<ChartOptions<'bar'>>();
  /** What the chart shows, in words, for screen readers. */
  readonly label = input.required<string>();
  readonly testId = input.required<string>();
}
