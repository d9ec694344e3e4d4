// Keyboard-wedge scanning anywhere on the page.
//
// A wedge scanner "types" the barcode: a burst of keys far faster than a person (a few ms apart) that
// ends with Enter. We watch every keydown on the window (capture phase, whatever has focus), and a run
// of keys each less than `gapMs` apart, at least `minLength` long, is a scan: it is taken away from the
// page (the focused field gets its text back) and handed to `onScan(data)`.
//
// Where a scan ends: a barcode ends at the scanner's Enter suffix. A licence (AAMVA PDF417) has line breaks
// *inside* it that also arrive as Enter, so for a payload starting with "@" the header's own declared
// length (largest subfile offset + length, as the serial framer reads it) says when it is whole; the
// Enter suffix after that is dropped. If the header cannot be read the licence ends after `holdMs` of
// quiet. Once a burst is recognised as a scanner, a stall of up to `holdMs` (USB polling, a busy
// machine) does not cut it in two; only before that must keys come within `gapMs`. A licence is
// recognised from its first keys ("@", a line break, "A": no person types that), so it needs no fast
// start, and until its header is read and its declared length reached it may stall for `stallMs`.
// Times are the keys' own (`event.timeStamp`, when the key was made), not when a busy page got round to
// them: a late event loop delivers a scanner's keys late but still close together.
//
// What a wedge can mangle, and what we do about it (devices.md §2; hub/domain/aamva.py):
// - LF and CR inside a licence (AAMVA element separator and segment terminator) arrive as Enter, kept
//   as "\n"; the hub's wedge parser reads any line break (so LF vs CR is lost, harmlessly).
// - RS (0x1E) cannot be typed on most layouts and is usually dropped. The AAMVA header is fixed by the
//   standard ("@" LF RS CR then "ANSI " or "AAMVA"), so we restore it exactly when the rest of the burst
//   begins like a licence; the hub's classifier needs all four header characters.
// - Scanners in "control-character as Ctrl+key" mode send Ctrl+J (LF), Ctrl+M (CR), Ctrl+^ (RS),
//   Ctrl+] (GS): mapped back to the characters. Control characters that reach the page as text input
//   (no keydown; e.g. an IME or CDP insertText) are taken from `beforeinput`.
// - A layout mismatch (scanner set to US, OS set to another layout) swaps characters: nothing can
//   recover that in the browser; the hub then refuses the scan in plain words.
// - Auto-repeat of a held key is fast too: repeats are ignored so a held key never looks like a scan.

const CTRL_MAP = { j: "\n", J: "\n", m: "\r", M: "\r", "^": "\x1e", 6: "\x1e", "]": "\x1d" };
const AAMVA_HEADER = "@\n\x1e\r";

export function restoreAamvaHeader(data) {
  // "@" then any run of line breaks / RS, then the file type: rebuild the fixed header
  const m = /^@[\n\r\x1e]{1,4}(ANSI |AAMVA)/.exec(data);
  if (!m) return data;
  return AAMVA_HEADER + data.slice(m[0].length - m[1].length);
}

const FILE_TYPES = ["ANSI ", "AAMVA"];
// how a licence begins: "@", line breaks (RS is often lost), then its file type, "ANSI " or "AAMVA"
const LICENCE_BEGUN = /^@([\n\r\x1e]+(A|$)|$)/;

// when the key was made (the platform's time, in performance.now()'s clock), not when we got to it
function keyTime(e) {
  return e.timeStamp > 0 ? e.timeStamp : performance.now();
}

/** Whether `buf` may still become a readable AAMVA header: too short yet, not malformed so far. */
function aamvaHeaderPending(buf) {
  if (buf.length < 17) return true;
  const version = buf.slice(15, 17);
  if (!/^\d\d$/.test(version)) return false;
  const head = Number(version) >= 2 ? 21 : 19;
  if (buf.length < head) return true;
  const entries = buf.slice(head - 2, head);
  return /^\d\d$/.test(entries) && buf.length < head + 10 * Number(entries);
}

/** Total length an AAMVA header declares, or null (mirrors hub/domain/scan_classify.aamva_declared_length). */
export function aamvaDeclaredLength(buf) {
  if (buf.length < 17 || buf[0] !== "@" || !FILE_TYPES.includes(buf.slice(4, 9))) return null;
  const version = buf.slice(15, 17);
  if (!/^\d\d$/.test(version)) return null;
  const head = Number(version) >= 2 ? 21 : 19;
  const entriesText = buf.slice(head - 2, head);
  if (!/^\d\d$/.test(entriesText)) return null;
  const entries = Number(entriesText);
  if (entries === 0 || buf.length < head + 10 * entries) return null;
  let end = 0;
  for (let i = 0; i < entries; i++) {
    const d = buf.slice(head + 10 * i, head + 10 * (i + 1));
    if (!/^\d{8}$/.test(d.slice(2, 10))) return null;
    end = Math.max(end, Number(d.slice(2, 6)) + Number(d.slice(6, 10)));
  }
  return end > head ? end : null;
}

export class WedgeScanner {
  constructor(
    onScan,
    { gapMs = 50, holdMs = 300, stallMs = 2000, graceMs = 40, minLength = 6, target = window } = {},
  ) {
    this.onScan = onScan;
    this.gapMs = gapMs;
    this.holdMs = holdMs;
    this.stallMs = stallMs;
    this.graceMs = graceMs;
    this.minLength = minLength;
    this.target = target;
    this.buf = "";
    this.last = 0;
    this.fast = 0; // keys that followed the previous one within the allowed gap
    this.field = null; // the focused text field when the burst began, and its value then
    this.fieldValue = "";
    this.complete = false; // a licence has reached its declared length
    this._timer = null;
    this.enabled = true;
    this._onKey = (e) => this._key(e);
    this._onBeforeInput = (e) => this._beforeInput(e);
    target.addEventListener("keydown", this._onKey, true);
    target.addEventListener("beforeinput", this._onBeforeInput, true);
  }

  stop() {
    this.target.removeEventListener("keydown", this._onKey, true);
    this.target.removeEventListener("beforeinput", this._onBeforeInput, true);
  }

  get inBurst() {
    return this.fast >= 2;
  }

  get established() {
    return this.buf.length >= this.minLength && this.fast + 1 >= this.minLength;
  }

  // how long the burst may wait for `next` (the text of the key that arrives) and still be one scan
  _patience(next) {
    const sofar = this.buf + next;
    if (LICENCE_BEGUN.test(sofar)) {
      // a licence's header is on its way, or has said that more is coming
      const full = restoreAamvaHeader(sofar);
      const declared = aamvaDeclaredLength(full);
      if (declared ? full.length <= declared : aamvaHeaderPending(full)) return this.stallMs;
    }
    return this.established ? this.holdMs : this.gapMs;
  }

  _reset() {
    this.buf = "";
    this.fast = 0;
    this.field = null;
    this.complete = false;
    clearTimeout(this._timer);
  }

  _arm(ms) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._finish(), ms);
  }

  // a key with `text` was made at `now`: continue the burst or start a new one
  _tick(now, text) {
    const gap = now - this.last;
    if (this.buf && gap <= this._patience(text)) {
      this.fast += 1;
    } else {
      if (this.established) this._finish(); // a scan that ended without a suffix
      this._reset();
      const el = document.activeElement;
      if (el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA")) {
        this.field = el;
        this.fieldValue = el.value;
      }
    }
    this.last = now;
  }

  _swallow(e) {
    // a scanner is typing: keep its keys away from buttons and fields (its Enter must not click)
    e.preventDefault();
    e.stopPropagation();
  }

  _key(e) {
    if (!this.enabled || e.repeat || e.isComposing) return;
    if (["Shift", "Control", "Alt", "Meta", "CapsLock", "AltGraph"].includes(e.key)) return;
    let ch = null;
    if (e.key === "Enter") ch = "\n";
    else if (e.key === "Tab") ch = "\t";
    else if (e.ctrlKey && !e.altKey && e.key in CTRL_MAP) ch = CTRL_MAP[e.key];
    else if (e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) ch = e.key;
    if (ch === null) {
      this._reset();
      return;
    }
    if (ch === "\n" && !this.buf) return; // a person pressing Enter
    this._tick(keyTime(e), ch);
    if (ch !== "\n") {
      if (ch.charCodeAt(0) < 32 && this.buf.length > 0) this._swallow(e); // Ctrl+J etc. inside a scan
      this._add(ch);
      if (this.inBurst) this._swallow(e);
      return;
    }
    if (this.buf.startsWith("@")) {
      // a licence: line breaks are data until the declared length is reached; then Enter is the suffix
      if (this.inBurst) this._swallow(e);
      if (this.complete) return this._arm(this.graceMs);
      this._add("\n");
      return undefined;
    }
    if (this.established) {
      this._swallow(e);
      this._finish();
    } else {
      this._reset(); // a person typed something and pressed Enter
    }
    return undefined;
  }

  _add(text) {
    this.complete = false; // more data after the declared end: that card's offsets were off
    this.buf += text;
    if (this.buf.startsWith("@")) {
      const full = restoreAamvaHeader(this.buf);
      const declared = aamvaDeclaredLength(full);
      if (declared && full.length >= declared) {
        this.complete = true;
        return this._arm(this.graceMs);
      }
    }
    this._arm(Math.max(this.holdMs, this._patience("")));
    return undefined;
  }

  _beforeInput(e) {
    if (!this.enabled || typeof e.data !== "string" || !e.data) return;
    // only control characters that arrived without a keydown (text typed by keys is counted in _key)
    if (!/^[\x00-\x1f]+$/.test(e.data)) return;
    this._tick(keyTime(e), e.data);
    e.preventDefault();
    this._add(e.data);
  }

  _finish() {
    const data = this.buf;
    const isScan = this.established;
    const field = this.field;
    const value = this.fieldValue;
    this._reset();
    if (!isScan) return;
    if (field && field.value !== value) {
      field.value = value; // the first key or two landed in the field before we knew it was a scan
      field.dispatchEvent(new Event("input", { bubbles: true }));
    }
    this.onScan(restoreAamvaHeader(data));
  }
}
