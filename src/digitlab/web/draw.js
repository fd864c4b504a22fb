// The drawing pad: pointer events (mouse, touch, pen), a pen-like stroke, undo and clear.
// Strokes are kept as point lists so undo just redraws the rest. A finger or pen draws without
// scrolling or zooming the page (touch-action: none, here and in style.css; the pointer is
// captured, so a stroke that leaves the pad still ends); one finger draws, a second is ignored.

export class DrawingPad {
  constructor(canvas, { onChange, onStrokeEnd } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.strokes = [];
    this.current = null;
    this.onChange = onChange || (() => {});
    this.onStrokeEnd = onStrokeEnd || (() => {});
    this.lineWidth = Math.round(canvas.width / 14);
    this.clear(false);
    canvas.addEventListener('pointerdown', (e) => this.down(e));
    canvas.addEventListener('pointermove', (e) => this.move(e));
    canvas.addEventListener('pointerup', (e) => this.up(e));
    canvas.addEventListener('pointercancel', (e) => this.up(e));
    canvas.addEventListener('lostpointercapture', (e) => this.up(e));
    canvas.addEventListener('contextmenu', (e) => e.preventDefault()); // a long press is a dot, not a menu
    canvas.style.touchAction = 'none';
  }

  point(e) {
    // the canvas's pixels span its content box: inside the border, at whatever size CSS gives it
    const c = this.canvas, rect = c.getBoundingClientRect();
    const sx = c.width / (c.clientWidth || rect.width), sy = c.height / (c.clientHeight || rect.height);
    // pens report pressure; a mouse reports 0.5 while pressed
    const p = e.pointerType === 'pen' ? 0.6 + 0.8 * e.pressure : 1;
    return [(e.clientX - rect.left - c.clientLeft) * sx, (e.clientY - rect.top - c.clientTop) * sy, p];
  }

  down(e) {
    if (e.button !== 0 && e.pointerType === 'mouse') return;
    if (!e.isPrimary) return; // a second finger while one draws
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    this.pointerId = e.pointerId;
    this.current = [this.point(e)];
    this.strokes.push(this.current);
    this.dot(this.current[0]);
    this.onChange();
  }

  move(e) {
    if (!this.current || e.pointerId !== this.pointerId) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const p = this.point(ev);
      this.segment(this.current[this.current.length - 1], p);
      this.current.push(p);
    }
    this.onChange();
  }

  up(e) {
    if (!this.current || (e && e.pointerId !== this.pointerId)) return;
    this.current = null;
    this.onStrokeEnd();
  }

  dot([x, y, p]) {
    const ctx = this.ctx;
    ctx.fillStyle = '#111';
    ctx.beginPath();
    ctx.arc(x, y, (this.lineWidth * p) / 2, 0, Math.PI * 2);
    ctx.fill();
  }

  segment(a, b) {
    const ctx = this.ctx;
    ctx.strokeStyle = '#111';
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.lineWidth = this.lineWidth * (a[2] + b[2]) / 2;
    ctx.beginPath();
    ctx.moveTo(a[0], a[1]);
    ctx.lineTo(b[0], b[1]);
    ctx.stroke();
  }

  redraw() {
    const { ctx, canvas } = this;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (const stroke of this.strokes) {
      this.dot(stroke[0]);
      for (let i = 1; i < stroke.length; i++) this.segment(stroke[i - 1], stroke[i]);
    }
  }

  clear(notify = true) {
    this.strokes = [];
    this.current = null;
    this.redraw();
    if (notify) this.onChange();
  }

  undo() {
    this.strokes.pop();
    this.redraw();
    this.onChange();
  }

  get empty() { return this.strokes.length === 0; }

  pixels() {
    return this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
  }
}
