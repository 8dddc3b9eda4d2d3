// The softphone page: dial, talk, hear the agent, see the call as it is stored. The audio path is Twilio's: the
// microphone becomes 8 kHz μ-law 20 ms frames (phone-worklets.js) sent to the local gateway, which plays Twilio's
// part towards the relay; the agent's audio comes back with its marks, reported to the gateway once played.

const $ = (id) => document.getElementById(id);

// Counters the tests read (and the page shows): frames sent and played, marks reported played, clears.
const stats = { state: "idle", callSid: null, sentFrames: 0, playedFrames: 0, marksReceived: 0, marksEchoed: 0, clears: 0 };
window.softphone = stats;

let config = null;
let socket = null;
let audio = null; // {context, stream, capture, playback}
let inCall = false;

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function showCounters() {
  $("sent-frames").textContent = stats.sentFrames;
  $("played-frames").textContent = stats.playedFrames;
  $("marks-echoed").textContent = stats.marksEchoed;
  $("clears").textContent = stats.clears;
}

function setState(state, text) {
  stats.state = state;
  document.body.dataset.state = state;
  $("status").textContent = text;
  const busy = state === "dialing" || state === "in-call" || state === "ending";
  $("dial").disabled = busy;
  $("hangup").disabled = state !== "in-call";
  for (const key of document.querySelectorAll(".keypad button")) key.disabled = state !== "in-call";
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function microphoneError(error) {
  if (error.name === "NotAllowedError" || error.name === "SecurityError") {
    return "Microphone access was denied. Allow the microphone for this page in the browser's site settings, then dial again.";
  }
  if (error.name === "NotFoundError" || error.name === "OverconstrainedError") {
    return "No microphone was found. Connect one, then dial again.";
  }
  return `The microphone could not be opened: ${error.message || error.name}`;
}

async function startAudio() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  const context = new AudioContext({ latencyHint: "interactive" });
  await context.audioWorklet.addModule("/static/phone-worklets.js");
  const capture = new AudioWorkletNode(context, "mulaw-capture", { numberOfOutputs: 1 });
  const playback = new AudioWorkletNode(context, "mulaw-playback", { numberOfInputs: 0, outputChannelCount: [1] });
  const mute = new GainNode(context, { gain: 0 }); // keeps the capture node pulled, without hearing yourself
  context.createMediaStreamSource(stream).connect(capture).connect(mute).connect(context.destination);
  playback.connect(context.destination);
  capture.port.onmessage = (event) => {
    if (!inCall) return;
    send({ type: "media", payload: toBase64(event.data) });
    stats.sentFrames++;
  };
  playback.port.onmessage = (event) => {
    const report = event.data;
    stats.playedFrames = Math.floor(report.playedBytes / 160);
    if (report.played !== undefined) {
      stats.marksEchoed++;
      send({ type: "played", mark: report.played, playedBytes: report.playedBytes });
    }
    showCounters();
  };
  await context.resume();
  audio = { context, stream, capture, playback };
}

function stopAudio() {
  if (!audio) return;
  for (const track of audio.stream.getTracks()) track.stop();
  audio.context.close();
  audio = null;
}

function addTurn(turn) {
  const item = document.createElement("li");
  item.className = turn.role;
  item.dataset.index = turn.index;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = turn.role === "agent" ? "Agent:" : "You:";
  item.append(who, document.createTextNode(turn.text || "(nothing recognised)"));
  const meta = [];
  if (turn.latencyMs !== null) meta.push(`answered ${turn.latencyMs} ms after you stopped`);
  if (turn.interrupted) meta.push(`interrupted after ${turn.heardMs} ms`);
  if (meta.length) {
    const line = document.createElement("span");
    line.className = "meta";
    line.textContent = meta.join(" · ");
    item.append(line);
  }
  for (const tool of turn.tools) {
    const line = document.createElement("span");
    line.className = "tool";
    line.textContent = `${tool.ok ? "✓" : "✗"} ${tool.name}(${tool.arguments}) → ${tool.result} (${tool.durationMs} ms)`;
    item.append(line);
  }
  $("turns").append(item);
}

function addEvent(text) {
  const item = document.createElement("li");
  item.className = "event";
  item.textContent = text;
  $("turns").append(item);
}

function showSummary(summary) {
  const fields = [
    ["Outcome", summary.outcome || "(none recorded)"],
    ["Status", summary.status],
    ["Ended by", { caller: "you", hangup: "the agent (hang-up)", transfer: "transfer to the human line", relay: "the relay" }[summary.endedBy] || summary.endedBy],
    ["Duration", summary.durationSeconds === null ? "–" : `${summary.durationSeconds} s`],
    ["Turns", summary.turns],
    ["Tools called", summary.tools],
    ["Barge-ins", summary.bargeIns],
    ["Greeting latency", summary.greetingMs === null ? "–" : `${summary.greetingMs} ms`],
    ["Turn latency p50", summary.turnP50Ms === null ? "–" : `${summary.turnP50Ms} ms`],
    ["Transferred to", summary.transferTarget || "–"],
    ["Transcript", summary.transcriptKey || "–"],
    ["Call", summary.callSid],
  ];
  const list = $("summary-fields");
  list.replaceChildren();
  for (const [name, value] of fields) {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = String(value);
    list.append(term, detail);
  }
  list.dataset.outcome = summary.outcome || "";
  $("summary").hidden = false;
}

function endCall() {
  inCall = false;
  stopAudio();
  if (socket) socket.close();
  socket = null;
}

function onMessage(message) {
  switch (message.type) {
    case "dialing":
      setState("dialing", message.direction === "outbound" ? "The agent is calling you…" : "Ringing…");
      break;
    case "connected":
      inCall = true;
      stats.callSid = message.callSid;
      setState("in-call", `In call (${message.direction}, ${message.callSid}). Speak now.`);
      $("hangup").focus();
      break;
    case "media":
      audio?.playback.port.postMessage({ media: fromBase64(message.payload) });
      break;
    case "mark":
      stats.marksReceived++;
      audio?.playback.port.postMessage({ mark: message.name });
      break;
    case "clear":
      stats.clears++;
      audio?.playback.port.postMessage({ clear: true });
      showCounters();
      break;
    case "turn":
      addTurn(message);
      break;
    case "line":
      addEvent(message.event === "transfer" ? "The agent is transferring you to the human line." : "The agent hung up.");
      setState("ending", "The call is ending…");
      break;
    case "summary":
      setState("ended", `Call ended: ${message.outcome || message.status}.`);
      showSummary(message);
      endCall();
      break;
    case "error":
      showError(message.message);
      if (stats.state === "dialing") {
        setState("idle", "Not connected.");
        endCall();
      }
      break;
    default:
      break;
  }
}

async function dial() {
  clearError();
  const number = $("number").value.trim();
  if (!$("number").checkValidity()) {
    showError("Enter your number in E.164 form, like +15550100123.");
    $("number").focus();
    return;
  }
  const direction = document.querySelector("input[name=direction]:checked").value;
  $("turns").replaceChildren();
  $("summary").hidden = true;
  Object.assign(stats, { callSid: null, sentFrames: 0, playedFrames: 0, marksReceived: 0, marksEchoed: 0, clears: 0 });
  showCounters();
  setState("dialing", "Opening the microphone…");
  try {
    await startAudio();
  } catch (error) {
    setState("idle", "Not connected.");
    showError(microphoneError(error));
    return;
  }
  socket = new WebSocket(`ws://${location.host}/phone`);
  socket.onopen = () => send({ type: "dial", direction, number, context: $("context").value });
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = () => {
    if (stats.state === "dialing" || stats.state === "in-call" || stats.state === "ending") {
      showError("Lost the connection to the softphone server (is `make phone` still running?).");
      setState("idle", "Not connected.");
      endCall();
    }
  };
}

function hangUp() {
  setState("ending", "Hanging up…");
  send({ type: "hangup" });
}

function pressKey(digit) {
  if (!inCall) return;
  send({ type: "dtmf", digit });
  addEvent(`You pressed ${digit}.`);
}

async function init() {
  try {
    const response = await fetch("/config");
    config = await response.json();
  } catch (error) {
    showError("The softphone server is not reachable (is `make phone` running?).");
    return;
  }
  $("line-info").textContent = `${config.businessName} (${config.agentNumber}, profile ${config.profile}) · model: ${config.modelDescription}`;
  $("number").value = config.callerNumber;
  for (const radio of document.querySelectorAll("input[name=direction]")) {
    radio.addEventListener("change", () => {
      const outbound = radio.value === "outbound" && radio.checked;
      $("context").hidden = !outbound;
      $("context-label").hidden = !outbound;
    });
  }
  $("dial").addEventListener("click", dial);
  $("hangup").addEventListener("click", hangUp);
  for (const key of document.querySelectorAll(".keypad button")) {
    key.addEventListener("click", () => pressKey(key.dataset.digit));
  }
  document.addEventListener("keydown", (event) => {
    if (!inCall || event.target instanceof HTMLInputElement) return;
    if (/^[0-9*#]$/.test(event.key)) pressKey(event.key);
    else if (event.key === "Escape") hangUp();
  });
  setState("idle", "Idle. Press Dial to call.");
  showCounters();
}

init();
