/*
 * Scrolling boxes whose height is a whole number of their table's rows.
 */

/**
 * A scrolling box whose height is a whole number of its table's rows: its CSS max-height,
 * trimmed to the bottom of the last row that fits, so that no row is cut in half (rows then
 * snap under the sticky header as it scrolls: --head is the header's height).
 */
function fitWholeRows(box) {
  const table = box.querySelector("table");
  if (!table || !table.tBodies.length) return;
  box.style.maxHeight = "";
  const head = table.tHead ? table.tHead.getBoundingClientRect().height : 0;
  box.style.setProperty("--head", `${head}px`);
  if (box.scrollHeight <= box.clientHeight + 1) return;
  const top = table.getBoundingClientRect().top;
  const room = box.clientHeight;
  let fit = head;
  for (const tr of table.tBodies[0].rows) {
    const bottom = tr.getBoundingClientRect().bottom - top;
    if (bottom > room + 0.5) break;
    fit = bottom;
  }
  if (fit <= head) return;
  const frame = box.offsetHeight - box.clientHeight; // borders, and a horizontal scrollbar
  box.style.maxHeight = `${Math.floor(fit + frame)}px`;
}

let fitPending = false;

/** Fits every .scroll box of the page at the next frame (once, however often asked). */
export function fitAllSoon() {
  if (fitPending) return;
  fitPending = true;
  requestAnimationFrame(() => {
    fitPending = false;
    for (const box of document.querySelectorAll(".scroll")) fitWholeRows(box);
  });
}

window.addEventListener("resize", fitAllSoon);
