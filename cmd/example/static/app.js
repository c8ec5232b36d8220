// colibri chat: joins a room over a WebSocket and shows what its members say.
// Messages from the server are JSON: {"from": name, "text": text} for chat
// and {"system": text} for joins and leaves.
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;
let me = "";

// The echo link names the URL a WebSocket client dials.
$("echo").title = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/echo`;

function show(cls, from, text) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  if (from) {
    const b = document.createElement("span");
    b.className = "from";
    b.textContent = from;
    li.appendChild(b);
  }
  li.appendChild(document.createTextNode(text));
  $("messages").appendChild(li);
  li.scrollIntoView({ block: "end" });
}

// join opens the page's one socket. While it is connecting or open, the
// join form is disabled or hidden, and a second Join does nothing: Leave
// first.
function join(room, username) {
  if (socket) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/ws/chat/${encodeURIComponent(room)}?username=${encodeURIComponent(username)}`;
  const ws = new WebSocket(url);
  socket = ws;
  me = username;
  $("join-button").disabled = true;
  $("status").textContent = "connecting…";
  ws.onopen = () => {
    $("status").textContent = `connected as ${username}`;
    $("join").hidden = true;
    $("chat").hidden = false;
    $("title").textContent = `#${room}`;
    $("text").focus();
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.system) show("system", "", msg.system);
    else show("", msg.from, msg.text);
  };
  ws.onclose = (ev) => {
    $("status").textContent = `disconnected (${ev.code}${ev.reason ? ": " + ev.reason : ""})`;
    $("join").hidden = false;
    $("join-button").disabled = false;
    $("chat").hidden = true;
    socket = null;
  };
}

$("join").addEventListener("submit", (ev) => {
  ev.preventDefault();
  join($("room").value.trim(), $("username").value.trim());
});

$("send").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("text").value;
  if (!socket || socket.readyState !== WebSocket.OPEN || text === "") return;
  socket.send(text);
  show("mine", me, text);
  $("text").value = "";
});

$("leave").addEventListener("click", () => socket && socket.close(1000, "bye"));
