import { makeJob } from '../../testing/fixtures';
import { estimateFinish, formatDuration, formatRelative, scheduledStart } from './eta';

const NOW = Date.parse('2026-11-01T10:01:00Z');

describe('estimateFinish', () => {
  it('extrapolates a running job from the progress it reported', () => {
    // Started 60 s ago and 25% done: 180 s to go, whatever the estimate said.
    const job = makeJob({
      status: 'running',
      started_at: '2026-11-01T10:00:00Z',
      progress: 25,
      estimated_time: 30,
    });
    const eta = estimateFinish(job, NOW);
    expect(eta?.basis).toBe('progress');
    expect(eta?.remainingSeconds).toBeCloseTo(180);
    expect(eta?.finishAt).toBe(NOW + 180_000);
  });

  it('uses the estimate while a running job has reported almost nothing', () => {
    const job = makeJob({
      status: 'running',
      started_at: '2026-11-01T10:00:50Z',
      progress: 0,
      estimated_time: 30,
    });
    const eta = estimateFinish(job, NOW);
    expect(eta?.basis).toBe('estimate');
    expect(eta?.remainingSeconds).toBeCloseTo(20);
  });

  it('never promises a finish in the past for an overdue job', () => {
    const job = makeJob({
      status: 'running',
      started_at: '2026-11-01T09:00:00Z',
      progress: 0,
      estimated_time: 30,
    });
    expect(estimateFinish(job, NOW)?.remainingSeconds).toBe(0);
  });

  it('gives a queued job its whole estimate from now', () => {
    const eta = estimateFinish(makeJob({ status: 'queued', estimated_time: 6 }), NOW);
    expect(eta).toEqual({ finishAt: NOW + 6000, remainingSeconds: 6, basis: 'estimate' });
  });

  it('counts a scheduled job from its run_at, not from now', () => {
    // Due in 2 minutes, 6 s of work: finished 126 s from now.
    const job = makeJob({ status: 'scheduled', estimated_time: 6, run_at: '2026-11-01T10:03:00Z' });
    expect(estimateFinish(job, NOW)).toEqual({
      finishAt: Date.parse('2026-11-01T10:03:06Z'),
      remainingSeconds: 126,
      basis: 'estimate',
    });
    expect(scheduledStart(job, NOW)).toBe(Date.parse('2026-11-01T10:03:00Z'));
  });

  it('counts a scheduled job that is due already from now', () => {
    const job = makeJob({ status: 'scheduled', estimated_time: 6, run_at: '2026-11-01T09:00:00Z' });
    expect(scheduledStart(job, NOW)).toBe(NOW);
    expect(estimateFinish(job, NOW)?.remainingSeconds).toBe(6);
  });

  it('has nothing to say about finished jobs or jobs without an estimate', () => {
    expect(estimateFinish(makeJob({ status: 'succeeded', progress: 100 }), NOW)).toBeNull();
    expect(estimateFinish(makeJob({ status: 'cancelled' }), NOW)).toBeNull();
    expect(estimateFinish(makeJob({ status: 'queued', estimated_time: null }), NOW)).toBeNull();
  });
});

describe('formatDuration and formatRelative', () => {
  it('reads like a person would say it', () => {
    expect(formatDuration(45)).toBe('45 s');
    expect(formatDuration(200)).toBe('3 min 20 s');
    expect(formatDuration(120)).toBe('2 min');
    expect(formatDuration(7500)).toBe('2 h 5 min');
    expect(formatDuration(3 * 86400 + 4 * 3600)).toBe('3 d 4 h');
  });

  it('says in or ago', () => {
    expect(formatRelative(NOW + 12_000, NOW)).toBe('in 12 s');
    expect(formatRelative(NOW - 180_000, NOW)).toBe('3 min ago');
    expect(formatRelative(NOW + 500, NOW)).toBe('just now');
  });
});
