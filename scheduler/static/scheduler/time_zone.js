"use strict";

// Tells the server the browser's time zone (the `tz` cookie), which pages use until the person
// chooses one on /account/time-zone/. Loaded in <head>, before anything is formatted.
(() => {
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return;
  }
  if (!zone) return;
  const current = document.cookie.split("; ").find((pair) => pair.startsWith("tz="));
  if (current && decodeURIComponent(current.slice(3)) === zone) return;
  document.cookie = `tz=${encodeURIComponent(zone)}; path=/; max-age=31536000; SameSite=Lax`;
})();
