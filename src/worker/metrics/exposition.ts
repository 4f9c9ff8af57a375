// The text formats Prometheus scrapes: the classic text exposition format 0.0.4, and OpenMetrics 1.0 when the
// scraper's Accept header prefers it. Written here rather than taken from a library: prom-client needs Node's
// runtime and keeps live metric objects in a process-wide registry, which fits neither Workers (isolates come and
// go) nor this endpoint, which renders a fresh set of samples gathered from the nodes on every scrape. What remains
// is formatting, escaping and content negotiation, which this file does and its tests pin down.

export type MetricType = "counter" | "gauge" | "histogram";

export type Labels = Readonly<Record<string, string>>;

export interface ScalarSample {
  readonly labels: Labels;
  readonly value: number;
}

export interface HistogramSample {
  readonly labels: Labels;
  /** Upper bounds (ascending, finite) and the cumulative count of observations at or below each. */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  readonly sum: number;
  readonly count: number;
}

interface FamilyBase {
  /** The full sample name; counters end in `_total` (the OpenMetrics family name drops it). */
  readonly name: string;
  readonly help: string;
  /** A base unit the name ends with ("seconds", "bytes"): announced in OpenMetrics. */
  readonly unit?: string;
}

export type MetricFamily =
  | (FamilyBase & { readonly type: "counter" | "gauge"; readonly samples: readonly ScalarSample[] })
  | (FamilyBase & { readonly type: "histogram"; readonly samples: readonly HistogramSample[] });

export type ExpositionFormat = "prometheus" | "openmetrics";

export const CONTENT_TYPES: Readonly<Record<ExpositionFormat, string>> = {
  prometheus: "text/plain; version=0.0.4; charset=utf-8",
  openmetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8",
};

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Picks the format from an Accept header by quality: OpenMetrics only when the scraper ranks it at least as high
 * as the text format (Prometheus itself sends openmetrics-text first); everything else gets 0.0.4.
 */
export function negotiateFormat(accept: string | null | undefined): ExpositionFormat {
  if (accept === null || accept === undefined || accept.trim() === "") {
    return "prometheus";
  }
  let openMetricsQuality = 0;
  let textQuality = 0;
  for (const range of accept.split(",").slice(0, 32)) {
    const [mediaType = "", ...parameters] = range.split(";").map((part) => part.trim().toLowerCase());
    const qualityParameter = parameters.find((parameter) => parameter.startsWith("q="));
    const parsed = qualityParameter === undefined ? 1 : Number(qualityParameter.slice(2));
    const quality = Number.isFinite(parsed) ? Math.min(1, Math.max(0, parsed)) : 0;
    if (mediaType === "application/openmetrics-text") {
      const version = parameters.find((parameter) => parameter.startsWith("version="))?.slice("version=".length);
      if (version === undefined || version === "1.0.0" || version === "0.0.1") {
        openMetricsQuality = Math.max(openMetricsQuality, quality);
      }
    } else if (mediaType === "text/plain" || mediaType === "text/*" || mediaType === "*/*") {
      textQuality = Math.max(textQuality, quality);
    }
  }
  return openMetricsQuality > 0 && openMetricsQuality >= textQuality ? "openmetrics" : "prometheus";
}

/** Renders families in the given format. Throws on a malformed family: that is a bug here, not bad input. */
export function renderMetrics(families: readonly MetricFamily[], format: ExpositionFormat): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const family of families) {
    assertFamily(family);
    if (seen.has(family.name)) {
      throw new Error(`metric family ${family.name} is rendered twice`);
    }
    seen.add(family.name);
    if (family.samples.length === 0) {
      continue;
    }
    const familyName =
      format === "openmetrics" && family.type === "counter" ? family.name.slice(0, -"_total".length) : family.name;
    lines.push(`# HELP ${familyName} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${familyName} ${family.type}`);
    if (format === "openmetrics" && family.unit !== undefined) {
      lines.push(`# UNIT ${familyName} ${family.unit}`);
    }
    if (family.type === "histogram") {
      for (const sample of family.samples) {
        lines.push(...histogramLines(family.name, sample));
      }
    } else {
      for (const sample of family.samples) {
        lines.push(`${family.name}${labelText(sample.labels)} ${formatValue(sample.value)}`);
      }
    }
  }
  if (format === "openmetrics") {
    lines.push("# EOF");
  }
  return `${lines.join("\n")}\n`;
}

function histogramLines(name: string, sample: HistogramSample): string[] {
  const lines = sample.buckets.map(
    (bucket) =>
      `${name}_bucket${labelText({ ...sample.labels, le: formatValue(bucket.le) })} ${formatValue(bucket.count)}`,
  );
  lines.push(`${name}_bucket${labelText({ ...sample.labels, le: "+Inf" })} ${formatValue(sample.count)}`);
  lines.push(`${name}_sum${labelText(sample.labels)} ${formatValue(sample.sum)}`);
  lines.push(`${name}_count${labelText(sample.labels)} ${formatValue(sample.count)}`);
  return lines;
}

function assertFamily(family: MetricFamily): void {
  if (!METRIC_NAME.test(family.name)) {
    throw new Error(`invalid metric name ${JSON.stringify(family.name)}`);
  }
  if (family.type === "counter" && !family.name.endsWith("_total")) {
    throw new Error(`counter ${family.name} must end in _total`);
  }
  if (family.type !== "counter" && family.name.endsWith("_total")) {
    throw new Error(`${family.type} ${family.name} must not end in _total`);
  }
  if (family.unit !== undefined && !family.name.replace(/_total$/, "").endsWith(`_${family.unit}`)) {
    throw new Error(`${family.name} announces unit ${family.unit} but its name does not end with it`);
  }
  const reserved = family.type === "histogram" ? ["le"] : [];
  const keys = new Set<string>();
  for (const sample of family.samples) {
    const labelNames = Object.keys(sample.labels);
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || reserved.includes(label)) {
        throw new Error(`invalid label name ${JSON.stringify(label)} on ${family.name}`);
      }
    }
    const key = JSON.stringify(labelNames.sort().map((label) => [label, sample.labels[label]]));
    if (keys.has(key)) {
      throw new Error(`${family.name} has two samples with the labels ${key}`);
    }
    keys.add(key);
    if (family.type === "histogram") {
      const histogram = sample as HistogramSample;
      let previous = { le: Number.NEGATIVE_INFINITY, count: 0 };
      for (const bucket of histogram.buckets) {
        if (!(bucket.le > previous.le) || !Number.isFinite(bucket.le) || bucket.count < previous.count) {
          throw new Error(`${family.name}: buckets must have ascending finite bounds and cumulative counts`);
        }
        previous = bucket;
      }
      if (histogram.count < previous.count) {
        throw new Error(`${family.name}: the +Inf bucket holds fewer observations than ${previous.le}`);
      }
    }
  }
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) {
    return "";
  }
  return `{${entries.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`;
}

/** Label values escape backslash, double quote and line feed (both formats). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) {
    return "NaN";
  }
  if (value === Number.POSITIVE_INFINITY) {
    return "+Inf";
  }
  if (value === Number.NEGATIVE_INFINITY) {
    return "-Inf";
  }
  return String(value);
}
