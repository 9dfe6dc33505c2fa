/*
 * Times in the person's zone, durations, and the other text the pages format the same way.
 */
import { el } from "./dom.js";

const CLOCK = { hour: "2-digit", minute: "2-digit", second: "2-digit" };
const DATE_TIME = { year: "numeric", month: "2-digit", day: "2-digit", ...CLOCK };

/** A 24-hour Intl.DateTimeFormat in `timeZone` (the browser's own if it does not know it). */
export function formatter(timeZone, options, locale = "en-GB") {
  try {
    return new Intl.DateTimeFormat(locale, { ...options, timeZone, hourCycle: "h23" });
  } catch (error) {
    return new Intl.DateTimeFormat(locale, { ...options, hourCycle: "h23" });
  }
}

/** "2024-05-01 13:04:05": the date and time the chat and tournament pages show. */
export const dateTimeFormatter = (timeZone) => formatter(timeZone, DATE_TIME, "sv-SE");

/** The dashboard's and the task page's formats: "13:04:05", "Wed 13:04", "Wed 13:04:05",
 * "13:04". */
export function timeFormats(timeZone) {
  return {
    time: formatter(timeZone, CLOCK),
    dayTime: formatter(timeZone, { weekday: "short", hour: "2-digit", minute: "2-digit" }),
    daySeconds: formatter(timeZone, { weekday: "short", ...CLOCK }),
    hourMinute: formatter(timeZone, { hour: "2-digit", minute: "2-digit" }),
  };
}

/** A <time> element for an ISO date-time, shown with `format` (as given if unreadable). */
export function timeElement(iso, format) {
  const at = new Date(iso);
  return el("time", { datetime: iso, text: Number.isNaN(at.getTime()) ? iso : format.format(at) });
}

/** "350 ms", "4.2 s", "3 min 20 s", "2 h 5 min"; "—" for no duration. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  let minutes = Math.floor(Math.round(seconds) / 60);
  const rest = Math.round(seconds) % 60;
  if (minutes < 60) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  minutes %= 60;
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
}

export const percent = (fraction) =>
  fraction === null || fraction === undefined ? "—" : `${Math.round(fraction * 100)}%`;

/** "1 run", "3 runs". */
export const plural = (count, noun) => `${count} ${noun}${count === 1 ? "" : "s"}`;

/** An error's first line of text, at most 200 characters: the server's error_summary. */
export function oneLine(text) {
  const plain = String(text || "")
    .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<(br|\/p|\/h[1-6]|\/title|\/div|\/li|\/tr)\b[^>]*>/gi, "\n")
    .replace(/<[^>]*>/g, "");
  const lines = plain
    .split("\n")
    .map((part) => part.trim().replace(/\s+/g, " "))
    .filter(Boolean);
  let line = lines[0] || "";
  if (line.endsWith(":") && lines.length > 1) line = `${line} ${lines[1]}`;
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}
