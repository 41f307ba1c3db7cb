// A small time-series line chart on a canvas: a few series over the last minutes, axes with
// the highest value and the time span, a legend. Drawn by hand rather than with a vendored
// library: the console needs three such charts and nothing else.
'use strict';

(function (global) {
  const AXIS = '#8a94a6';
  const GRID = '#e3e7ee';

  function formatValue(value) {
    if (value >= 1e9) return (value / 1e9).toFixed(1) + 'G';
    if (value >= 1e6) return (value / 1e6).toFixed(1) + 'M';
    if (value >= 1e3) return (value / 1e3).toFixed(1) + 'k';
    return Number.isInteger(value) ? String(value) : value.toFixed(1);
  }

  // series: [{label, color, points: [[epochSeconds, value], ...] oldest first}].
  // Records what it drew on the canvas (data-points, data-max, data-total: the sum of the
  // values) so that what is on screen
  // can be checked without reading pixels.
  function draw(canvas, series, unit) {
    const ratio = global.devicePixelRatio || 1;
    const width = canvas.clientWidth || 480;
    const height = canvas.clientHeight || 160;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '11px system-ui, sans-serif';

    const left = 48;
    const right = width - 8;
    const top = 20;
    const bottom = height - 20;
    const all = series.flatMap((s) => s.points);
    const times = all.map((p) => p[0]);
    const tMin = times.length ? Math.min(...times) : 0;
    const tMax = times.length ? Math.max(...times) : 1;
    const vMax = Math.max(1, ...all.map((p) => p[1]));
    const x = (t) => left + (tMax === tMin ? (right - left) : ((t - tMin) / (tMax - tMin)) * (right - left));
    const y = (v) => bottom - (v / vMax) * (bottom - top);

    ctx.strokeStyle = GRID;
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const gy = top + ((bottom - top) * i) / 4;
      ctx.beginPath();
      ctx.moveTo(left, gy);
      ctx.lineTo(right, gy);
      ctx.stroke();
    }
    ctx.fillStyle = AXIS;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.fillText(formatValue(vMax), left - 6, top);
    ctx.fillText('0', left - 6, bottom);
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    if (times.length) {
      const span = Math.round(tMax - tMin);
      ctx.fillText(`${span} s ago`, left, height - 4);
      ctx.textAlign = 'right';
      ctx.fillText(new Date(tMax * 1000).toLocaleTimeString(), right, height - 4);
    } else {
      ctx.textAlign = 'center';
      ctx.fillText('no data yet', (left + right) / 2, (top + bottom) / 2);
    }

    let legendX = left;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    let drawn = 0;
    let total = 0;
    for (const s of series) {
      ctx.fillStyle = s.color;
      ctx.fillRect(legendX, 6, 10, 10);
      ctx.fillStyle = AXIS;
      const label = `${s.label} (${unit})`;
      ctx.fillText(label, legendX + 14, 11);
      legendX += 14 + ctx.measureText(label).width + 16;

      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      s.points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
      ctx.stroke();
      for (const [t, v] of s.points) {
        ctx.beginPath();
        ctx.arc(x(t), y(v), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
      drawn += s.points.length;
      total += s.points.reduce((sum, p) => sum + p[1], 0);
    }
    canvas.dataset.points = String(drawn);
    canvas.dataset.total = String(total);
    canvas.dataset.max = String(vMax);
  }

  global.KBChart = Object.freeze({ draw, formatValue });
})(window);
