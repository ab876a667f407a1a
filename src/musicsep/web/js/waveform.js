// A stem's waveform: the min and max of each pixel column's samples, drawn once on a canvas.

/** Draw `buffer` (an AudioBuffer) into `canvas`, sized to its CSS box at the screen's pixel ratio. */
export function drawWaveform(canvas, buffer, color) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  context.fillStyle = color;

  const channels = [];
  for (let c = 0; c < buffer.numberOfChannels; c += 1) channels.push(buffer.getChannelData(c));
  const perColumn = Math.max(1, Math.floor(buffer.length / width));
  const columns = [];
  let peak = 0;
  for (let x = 0; x < width; x += 1) {
    let low = 0;
    let high = 0;
    const start = x * perColumn;
    const end = Math.min(buffer.length, start + perColumn);
    for (const data of channels) {
      for (let i = start; i < end; i += 1) {
        const value = data[i];
        if (value < low) low = value;
        else if (value > high) high = value;
      }
    }
    columns.push([low, high]);
    peak = Math.max(peak, high, -low);
  }
  // Drawn to the stem's own peak so a quiet stem still shows its shape; the volume slider, not
  // the picture, says how loud it plays. At least one pixel high, so silence reads as a line.
  const scale = peak > 0 ? (height / 2) / peak : 0;
  const middle = height / 2;
  columns.forEach(([low, high], x) => {
    context.fillRect(x, middle - high * scale, 1, Math.max(1, (high - low) * scale));
  });
  canvas.dataset.drawn = "true";
}
