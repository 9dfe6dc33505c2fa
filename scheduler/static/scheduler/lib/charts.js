/*
 * The small SVG charts: the dashboard's throughput bars and sparklines, the tournament's
 * equity lines. Each draws what it is given; what the numbers mean stays with its page.
 */
import { svgEl } from "./dom.js";

/**
 * Columns of bars standing on the chart's bottom, `step` wide each (a pixel of space either
 * side), their parts stacked first at the bottom, `peak` as tall as the chart: a <g> each,
 * titled. A column is {title, parts: [{class, value}]}.
 */
export function stackedBars(columns, { step, height, peak }) {
  return columns.map((column, k) => {
    let top = height;
    const rects = column.parts.map((part) => {
      const size = peak ? (height * part.value) / peak : 0;
      top -= size;
      return svgEl("rect", { class: part.class, x: k * step + 1, y: top, width: step - 2, height: size });
    });
    return svgEl("g", {}, svgEl("title", { text: column.title }), ...rects);
  });
}

/**
 * A sparkline: a bar per value, as tall as its share of the largest (at least 3 px), `slots`
 * bars wide whatever the number of values. A value is {value, class, title}.
 */
export function sparkline(values, { bar, gap, height, slots, label }) {
  const width = slots * (bar + gap);
  const largest = Math.max(0, ...values.map((item) => item.value || 0));
  const bars = values.map((item, k) => {
    const share = largest ? (item.value || 0) / largest : 1;
    const size = Math.max(3, height * share);
    return svgEl(
      "rect",
      { class: item.class, x: k * (bar + gap), y: height - size, width: bar, height: size },
      svgEl("title", { text: item.title }),
    );
  });
  const box = { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label };
  return svgEl("svg", { class: "spark", ...box }, ...bars);
}

/**
 * A line of `values` drawn into `chart` (an <svg> of `width` × `height`, `pad` inside), over
 * a baseline at `base`: "up" if the last value is at or above it, "down" if below.
 */
export function lineChart(chart, values, { width, height, pad, base, title }) {
  chart.replaceChildren();
  if (!values.length) return;
  let low = Math.min(base, ...values);
  let high = Math.max(base, ...values);
  if (high === low) {
    high += 1;
    low -= 1;
  }
  const x = (index) =>
    values.length === 1 ? width / 2 : pad + (index * (width - 2 * pad)) / (values.length - 1);
  const y = (value) => height - pad - ((value - low) * (height - 2 * pad)) / (high - low);
  const last = values[values.length - 1];
  const trend = last >= base ? "up" : "down";
  const baseline = y(base).toFixed(2);
  chart.append(
    svgEl("line", { class: "baseline", x1: 0, x2: width, y1: baseline, y2: baseline }),
    svgEl("polyline", {
      class: `line ${trend}`,
      points: values.map((value, index) => `${x(index).toFixed(2)},${y(value).toFixed(2)}`).join(" "),
    }),
    svgEl("circle", {
      class: `dot-last ${trend}`,
      cx: x(values.length - 1).toFixed(2),
      cy: y(last).toFixed(2),
      r: 2,
    }),
    svgEl("title", { text: title }),
  );
}
