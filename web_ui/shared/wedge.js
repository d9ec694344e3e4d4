// Keyboard-wedge scanning anywhere on the page.
//
// A wedge scanner "types" the barcode: a burst of keys far faster than a person (a few ms apart) that
// ends with Enter. We watch every keydown on the window (capture phase, whatever has focus), and a run
// of keys each less than `gapMs` apart, at least `minLength` long, is a scan: it is taken away from the
// page (the focused field gets its text back) and handed to `onScan(data)`.
//
// What a wedge can mangle, and what we do about it (devices.md §2; hub/domain/aamva.py):
// - LF and CR inside a licence (AAMVA element separator and segment terminator) arrive as Enter. An Enter
//   followed by more fast keys is data, kept as "\n"; the hub's wedge parser reads any line break.
//   Only the Enter after which the keys stop is the scanner's suffix, and is dropped.
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

export class WedgeScanner {
  constructor(onScan, { gapMs = 50, minLength = 6, endMs = 80, target = window } = {}) {
    this.onScan = onScan;
    this.gapMs = gapMs;
    this.minLength = minLength;
    this.endMs = endMs;
    this.target = target;
    this.buf = "";
    this.last = 0;
    this.fast = 0; // consecutive keys within gapMs
    this.field = null; // the focused text field when the burst began, and its value then
    this.fieldValue = "";
    this.pendingEnter = false;
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

  _reset() {
    this.buf = "";
    this.fast = 0;
    this.field = null;
    this.pendingEnter = false;
    clearTimeout(this._timer);
  }

  _arm() {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._finish(), this.endMs);
  }

  _startIfNew(now) {
    if (now - this.last > this.gapMs) {
      // a pause: whatever was buffered was a person typing, not a scanner
      this._reset();
      const el = document.activeElement;
      if (el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA")) {
        this.field = el;
        this.fieldValue = el.value;
      }
    } else {
      this.fast += 1;
    }
    this.last = now;
  }

  _key(e) {
    if (!this.enabled || e.repeat || e.isComposing) return;
    if (["Shift", "Control", "Alt", "Meta", "CapsLock", "AltGraph"].includes(e.key)) return;
    const now = performance.now();
    let ch = null;
    if (e.key === "Enter") ch = "\n";
    else if (e.key === "Tab") ch = "\t";
    else if (e.ctrlKey && !e.altKey && e.key in CTRL_MAP) ch = CTRL_MAP[e.key];
    else if (e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) ch = e.key;
    if (ch === null) {
      this._reset();
      return;
    }
    this._startIfNew(now);
    if (this.pendingEnter) {
      this.buf += "\n"; // the earlier Enter was inside the data
      this.pendingEnter = false;
    }
    if (ch === "\n") this.pendingEnter = true;
    else this.buf += ch;
    if (this.inBurst || (ch !== e.key && this.buf.length > 1)) {
      // a scanner is typing: keep the keys away from buttons and fields (Enter must not click)
      e.preventDefault();
      e.stopPropagation();
    }
    this._arm();
  }

  _beforeInput(e) {
    if (!this.enabled || typeof e.data !== "string" || !e.data) return;
    // only control characters that arrived without a keydown (text typed by keys is counted in _key)
    if (!/^[\x00-\x1f]+$/.test(e.data)) return;
    const now = performance.now();
    this._startIfNew(now);
    this.buf += e.data;
    e.preventDefault();
    this._arm();
  }

  _finish() {
    const data = this.buf;
    const isScan = this.fast + 1 >= this.minLength && data.length >= this.minLength;
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
