import type { RequestRecord } from '@stowage/registry-server';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function labels(values: Readonly<Record<string, string>>): string {
  const parts = Object.entries(values).map(
    ([k, v]) => `${k}="${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')}"`,
  );
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** Prometheus metrics of the server, written in the text exposition format. */
export class ServerMetrics {
  readonly #requests = new Map<string, number>();
  readonly #aborted = new Map<string, number>();
  readonly #durations = new Map<string, Histogram>();
  readonly #bytesIn = new Map<string, number>();
  readonly #bytesOut = new Map<string, number>();
  #uploads = 0;

  /**
   * Counts one request. An aborted one (the client went away before the
   * answer was complete) counts under status 499 and in the aborted counter,
   * never as the 500 its cut-short handling might have looked like.
   */
  record(request: RequestRecord): void {
    const status = request.aborted ? '499' : String(request.status);
    const key = labels({ route: request.route, method: request.method, status });
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    const durationKey = labels({ route: request.route, method: request.method });
    if (request.aborted) this.#aborted.set(durationKey, (this.#aborted.get(durationKey) ?? 0) + 1);
    let histogram = this.#durations.get(durationKey);
    if (!histogram) {
      histogram = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#durations.set(durationKey, histogram);
    }
    const seconds = request.durationMs / 1000;
    for (const [i, bound] of BUCKETS.entries())
      if (seconds <= bound) histogram.counts[i] = (histogram.counts[i] ?? 0) + 1;
    histogram.sum += seconds;
    histogram.count++;
    const routeKey = labels({ route: request.route });
    this.#bytesIn.set(routeKey, (this.#bytesIn.get(routeKey) ?? 0) + request.bytesIn);
    this.#bytesOut.set(routeKey, (this.#bytesOut.get(routeKey) ?? 0) + request.bytesOut);
  }

  upload(delta: 1 | -1): void {
    this.#uploads = Math.max(0, this.#uploads + delta);
  }

  get uploadsInProgress(): number {
    return this.#uploads;
  }

  render(): string {
    const lines: string[] = [];
    const counter = (name: string, help: string, values: Map<string, number>) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [key, value] of values) lines.push(`${name}${key} ${value}`);
    };
    counter(
      'stowage_http_requests_total',
      'Requests by route, method and status (499: the client went away before the answer was complete).',
      this.#requests,
    );
    counter(
      'stowage_http_requests_aborted_total',
      'Requests the client abandoned mid-body or mid-answer, by route and method (also counted with status 499 above).',
      this.#aborted,
    );
    lines.push(
      '# HELP stowage_http_request_duration_seconds Request latency by route and method.',
      '# TYPE stowage_http_request_duration_seconds histogram',
    );
    for (const [key, histogram] of this.#durations) {
      const inner = key.slice(1, -1);
      for (const [i, bound] of BUCKETS.entries()) {
        lines.push(
          `stowage_http_request_duration_seconds_bucket{${inner},le="${bound}"} ${histogram.counts[i]}`,
        );
      }
      lines.push(
        `stowage_http_request_duration_seconds_bucket{${inner},le="+Inf"} ${histogram.count}`,
        `stowage_http_request_duration_seconds_sum${key} ${histogram.sum}`,
        `stowage_http_request_duration_seconds_count${key} ${histogram.count}`,
      );
    }
    counter('stowage_http_received_bytes_total', 'Request body bytes received, by route.', this.#bytesIn);
    counter('stowage_http_sent_bytes_total', 'Response body bytes sent, by route.', this.#bytesOut);
    lines.push(
      '# HELP stowage_uploads_in_progress Upload sessions started through this server that have not ended (finished, failed, cancelled or purged).',
      '# TYPE stowage_uploads_in_progress gauge',
      `stowage_uploads_in_progress ${this.#uploads}`,
      '# HELP process_resident_memory_bytes Resident memory size in bytes.',
      '# TYPE process_resident_memory_bytes gauge',
      `process_resident_memory_bytes ${process.memoryUsage.rss()}`,
    );
    return `${lines.join('\n')}\n`;
  }
}
