/* Gateway web chat widget, visitor protocol v1 (adapters/webchat/PROTOCOL.md). Plain ES2018, no deps. */
(function () {
  'use strict';
  var W = window, D = document;
  if (W.GatewayChat) return;

  // Find our <script>: document.currentScript, else the last .../webchat/{inboxId}/widget.js tag.
  var RE = /^(.*)\/webchat\/([^/]+)\/widget\.js$/;
  function path(s) { try { return new URL(s.src, location.href).pathname; } catch (e) { return ''; } }
  var script = D.currentScript;
  if (!script || !RE.test(path(script))) {
    script = null;
    for (var all = D.getElementsByTagName('script'), i = all.length - 1; i >= 0 && !script; i--) if (RE.test(path(all[i]))) script = all[i];
  }
  if (!script) return;
  var src = new URL(script.src, location.href), pm = RE.exec(src.pathname);
  var inboxId = decodeURIComponent(pm[2]);
  var httpBase = src.origin + pm[1] + '/webchat/' + pm[2];
  var wsUrl = httpBase.replace(/^http/, 'ws') + '/ws'; // http -> ws, https -> wss
  var ds = script.dataset || {};
  var cfg = { userId: ds.userId, userHash: ds.userHash, name: ds.name, title: ds.title || 'Chat with us', color: ds.color || '#2563eb' };

  // localStorage gw-chat:<inboxId> = {visitorId, visitorToken, lastSeq}; shown messages also go to
  // sessionStorage so a reload still shows them (hello.after skips them). A new tab has no such
  // copy, so hello.after is the highest seq shown in this page, not lastSeq (seen in any tab).
  var KEY = 'gw-chat:' + inboxId, HKEY = KEY + ':hist';
  function readJson(store, k) { try { var o = JSON.parse(store.getItem(k)); return o && typeof o === 'object' ? o : null; } catch (e) { return null; } }
  function write(store, k, v) { try { store.setItem(k, JSON.stringify(v)); } catch (e) { /* storage unavailable */ } }
  var st = readJson(W.localStorage, KEY) || {}, hist = [];
  st.lastSeq = +st.lastSeq || 0;
  function save() { write(localStorage, KEY, { visitorId: st.visitorId, visitorToken: st.visitorToken, lastSeq: st.lastSeq }); }

  function newId() { // randomUUID needs a secure context; otherwise 128 random bits in hex
    var c = W.crypto;
    return 'c-' + (c.randomUUID ? c.randomUUID() : Array.prototype.map.call(c.getRandomValues(new Uint8Array(16)), function (b) { return (b + 256).toString(16).slice(1); }).join(''));
  }

  // ---- DOM (class prefix gwc-) ----
  // "$" stands for ".gwc-" below; --gwc-c is the accent colour (data-color).
  var CSS = ('$root{position:fixed;right:20px;bottom:20px;z-index:2147483000;display:flex;flex-direction:column;align-items:flex-end;' +
    'font:14px/1.4 system-ui,sans-serif;color:#111}$root *{box-sizing:border-box;margin:0}$root [hidden]{display:none!important}' +
    '$launcher{width:56px;height:56px;border-radius:50%;border:0;padding:0;background:var(--gwc-c);color:#fff;cursor:pointer;' +
    'box-shadow:0 4px 14px #0004;display:flex;align-items:center;justify-content:center;position:relative}' +
    '$launcher svg{width:26px;height:26px;fill:currentColor}' +
    '$badge{position:absolute;top:-4px;right:-4px;min-width:20px;border-radius:10px;background:#d22;font-size:12px;line-height:20px;text-align:center}' +
    '$panel{width:340px;max-width:calc(100vw - 40px);height:480px;max-height:calc(100vh - 110px);background:#fff;border-radius:12px;' +
    'box-shadow:0 8px 30px #0004;display:flex;flex-direction:column;overflow:hidden;margin-bottom:12px}' +
    '$head{background:var(--gwc-c);color:#fff;padding:12px 14px;display:flex;font-weight:600}$title{flex:1;overflow:hidden}' +
    '$x{background:none;border:0;color:inherit;font-size:22px;line-height:1;cursor:pointer}' +
    '$list{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:6px;background:#f7f7f8}' +
    '$msg{max-width:80%;padding:8px 11px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;align-self:flex-end;background:var(--gwc-c);color:#fff}' +
    '$msg[data-direction=outbound]{align-self:flex-start;background:#fff;color:#111;border:1px solid #e3e3e6}' +
    '$msg[data-status=pending],$root :disabled{opacity:.6}$msg[data-status=failed]{text-decoration:line-through}' +
    '$typing,$err{padding:2px 14px;font-size:12px;color:#666}$err{color:#b91c1c}' +
    '$form{display:flex;border-top:1px solid #e3e3e6;padding:8px;gap:8px}' +
    '$input{flex:1;min-width:0;border:1px solid #ccc;border-radius:8px;padding:8px 10px;font:inherit}' +
    '$send{border:0;border-radius:8px;background:var(--gwc-c);color:#fff;padding:0 14px;font:inherit;cursor:pointer}').replace(/\$/g, '.gwc-');

  // el(tag, class, attrs ({tid: x} -> data-testid="gwc-x"), text, children). Text only via textContent (XSS).
  function el(tag, cls, attrs, text, kids) {
    var e = D.createElement(tag);
    if (cls) e.className = 'gwc-' + cls;
    for (var k in attrs || {}) e.setAttribute(k === 'tid' ? 'data-testid' : k, k === 'tid' ? 'gwc-' + attrs[k] : attrs[k]);
    if (text != null) e.textContent = text;
    (kids || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }
  var list = el('div', 'list', { role: 'log', 'aria-live': 'polite' });
  var typingEl = el('div', 'typing', { tid: 'typing', hidden: '' }, 'Agent is typing\u2026');
  var queueEl = el('div', 'typing', { tid: 'queue', hidden: '' });
  var errEl = el('div', 'err', { tid: 'error', role: 'alert', hidden: '' });
  var input = el('input', 'input', { tid: 'input', type: 'text', 'aria-label': 'Message', placeholder: 'Type a message\u2026', maxlength: '4000', autocomplete: 'off' });
  var sendBtn = el('button', 'send', { tid: 'send', type: 'submit' }, 'Send');
  var form = el('form', 'form', null, null, [input, sendBtn]);
  var xBtn = el('button', 'x', { type: 'button', 'aria-label': 'Close chat' }, '\u00d7');
  var panel = el('div', 'panel', { tid: 'panel', role: 'dialog', 'aria-label': cfg.title, hidden: '' }, null,
    [el('div', 'head', null, null, [el('div', 'title', null, cfg.title), xBtn]), list, queueEl, typingEl, errEl, form]);
  var badge = el('span', 'badge', { hidden: '' });
  var launcher = el('button', 'launcher', { tid: 'launcher', type: 'button', 'aria-label': 'Open chat', 'aria-expanded': 'false' });
  launcher.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2z"/></svg>'; // static markup
  launcher.appendChild(badge);
  var root = el('div', 'root', null, null, [panel, launcher]);
  root.style.setProperty('--gwc-c', cfg.color);

  function setErr(t) { errEl.textContent = t || ''; errEl.hidden = !t; }
  function scrollDown() { list.scrollTop = list.scrollHeight; }

  // ---- messages ----
  var pending = []; // own messages not yet echoed: {cid, text, el, accepted, sock, posting}
  var seenSeq = {}, seenId = {}, listeners = [], unread = 0, typingTimer, shownSeq = 0;

  function bubble(dir, text, status) {
    return el('div', 'msg', { tid: 'message', 'data-direction': dir, 'data-status': status }, text);
  }
  function textOf(m) {
    var c = m.content || {};
    return typeof c.text === 'string' && c.text ? c.text : '[' + (c.type || 'message') + ']';
  }
  function findPending(cid) { return pending.filter(function (p) { return p.cid === cid; })[0]; }
  function dropPending(p, status) {
    var at = pending.indexOf(p);
    if (at >= 0) pending.splice(at, 1);
    if (status) p.el.setAttribute('data-status', status); else if (p.el.parentNode) p.el.parentNode.removeChild(p.el);
  }
  function markAccepted(p) { p.accepted = true; p.el.setAttribute('data-status', 'sent'); }
  function showTyping(on) {
    clearTimeout(typingTimer);
    if (on) queueEl.hidden = true;
    typingEl.hidden = !on;
    if (on) typingTimer = setTimeout(function () { typingEl.hidden = true; }, 5000);
  }
  // Place in line while no agent has the conversation: "2 ahead of you (about 3 min)".
  function showQueue(position, etaSeconds) {
    queueEl.hidden = !position;
    if (!position) return;
    var ahead = position - 1;
    queueEl.textContent = (ahead ? ahead + ' ahead of you' : 'You are next') +
      (etaSeconds ? ' (about ' + Math.max(1, Math.round(etaSeconds / 60)) + ' min)' : '') + ': an agent will be with you soon.';
  }
  function setUnread(n) { unread = n; badge.textContent = n > 99 ? '99+' : n; badge.hidden = !n; }

  // Show a Message once (dedupe on seq and id), ordered by seq; pending own bubbles stay last.
  function onMsg(m, quiet) {
    if (!m || typeof m !== 'object') return;
    var seq = +m.seq || 0, dir = m.direction === 'outbound' ? 'outbound' : 'inbound';
    if ((seq && seenSeq[seq]) || (m.id && seenId[m.id])) return;
    if (seq) seenSeq[seq] = 1;
    if (m.id) seenId[m.id] = 1;
    var b = bubble(dir, textOf(m), 'sent');
    var p = dir === 'inbound' && m.externalId && findPending(m.externalId);
    if (p) dropPending(p); // our echo replaces the pending bubble
    if (seq) b.setAttribute('data-seq', seq);
    for (var k = list.firstElementChild; k; k = k.nextElementSibling) {
      var ks = +k.getAttribute('data-seq');
      if (!ks || ks > (seq || Infinity)) break;
    }
    list.insertBefore(b, k);
    scrollDown();
    if (seq > st.lastSeq) { st.lastSeq = seq; save(); }
    if (seq > shownSeq) shownSeq = seq;
    hist.push({ id: m.id, seq: seq, direction: dir, externalId: m.externalId, content: { type: (m.content || {}).type, text: textOf(m) }, sentAt: m.sentAt });
    write(sessionStorage, HKEY, { v: st.visitorId, m: hist.slice(-100) });
    if (quiet) return;
    if (dir === 'outbound') { showTyping(false); if (panel.hidden) setUnread(unread + 1); }
    listeners.slice().forEach(function (cb) { try { cb(m); } catch (e) { setTimeout(function () { throw e; }); } });
  }

  function welcome(w) {
    if (w.visitorId) {
      if (st.visitorId && st.visitorId !== w.visitorId) st.lastSeq = 0; // a new identity was issued
      st.visitorId = w.visitorId;
    }
    if (w.visitorToken) st.visitorToken = w.visitorToken;
    save();
    var seenElsewhere = st.lastSeq; // already seen in another tab: show, but not as unread
    (Array.isArray(w.messages) ? w.messages : []).forEach(function (m) { onMsg(m, +m.seq > 0 && +m.seq <= seenElsewhere); });
  }
  function helloFields() {
    var h = { after: shownSeq };
    if (st.visitorId) { h.visitorId = st.visitorId; h.visitorToken = st.visitorToken; }
    if (cfg.userId) { h.userId = cfg.userId; h.userHash = cfg.userHash; }
    if (cfg.name) h.name = cfg.name;
    return h;
  }

  function sendText(text) {
    text = String(text == null ? '' : text).trim();
    if (!text || fatal) return null;
    var p = { cid: newId(), text: text, el: bubble('inbound', text, 'pending') };
    list.appendChild(p.el);
    pending.push(p);
    scrollDown();
    start();
    flush();
    return p.cid;
  }
  // Send each unaccepted message once per socket; re-sends reuse the clientMessageId (the gateway dedupes).
  function flush() {
    var held = false;
    pending.slice().forEach(function (p) {
      if (p.accepted) return;
      // A message refused for now (rate_limited, busy) holds back every later one: they arrive in the order typed.
      if (held || p.held) { held = true; return; }
      if (mode === 'ws' && ready && p.sock !== sock) {
        if (wsSend({ type: 'message', clientMessageId: p.cid, text: p.text })) { p.sock = sock; lastSent = p; }
      } else if (mode === 'rest' && restReady) {
        // One POST at a time, in order: concurrent requests could land in any order.
        held = true;
        if (p.posting) return;
        p.posting = true;
        req('POST', '/messages', { visitorId: st.visitorId, visitorToken: st.visitorToken, clientMessageId: p.cid, text: p.text })
          .then(function () { p.posting = false; markAccepted(p); flush(); }, function (e) {
            p.posting = false;
            if (e.status === 400 || e.status === 413) { dropPending(p, 'failed'); flush(); return; }
            if (e.status === 429 || e.status === 503) { holdFor(p, e.status === 503 ? 3000 : 1000); return; }
            restErr(e);
          });
      }
    });
  }

  // Not stored: the same message (same clientMessageId) again after `ms`, the ones typed after it waiting behind it.
  function holdFor(p, ms) {
    p.held = true;
    setTimeout(function () { p.held = false; flush(); }, ms);
  }

  // ---- WebSocket ----
  var sock = null, ready = false, mode = 'ws', started = false, fatal = false, lastSent = null;
  var fails = 0, attempt = 0, retryTimer, pingTimer, liveTimer, typingSentAt = 0, typingOn = false, typingStop;

  function wsSend(o) {
    if (!sock || sock.readyState !== 1) return false;
    try { sock.send(JSON.stringify(o)); return true; } catch (e) { return false; }
  }
  function start() { if (!started) { started = true; connect(); } }
  function connect() {
    clearTimeout(retryTimer);
    if (fatal || sock) return;
    var s;
    try { s = new WebSocket(wsUrl); } catch (e) { return closed(null, 1006); }
    sock = s; ready = false; lastSent = null;
    s.onopen = function () {
      if (sock !== s) return;
      s.send(JSON.stringify(Object.assign({ type: 'hello' }, helloFields())));
      arm(s); // no welcome in 10 s: failed connect
    };
    s.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (sock !== s || !f) return;
      clearTimeout(liveTimer);
      if (f.type === 'welcome') {
        s.up = Date.now(); fails = 0; ready = true;
        if (mode === 'rest') { mode = 'ws'; clearTimeout(pollTimer); }
        setErr('');
        welcome(f);
        flush();
        clearInterval(pingTimer);
        pingTimer = setInterval(function () { if (wsSend({ type: 'ping' })) arm(s); }, 25000);
      } else if (f.type === 'accepted') {
        var p = findPending(f.clientMessageId);
        if (p) markAccepted(p);
        // With its seq, `accepted` is this socket's copy of the stored message (no echo follows).
        if (p && f.seq) onMsg({ id: f.messageId, seq: f.seq, direction: 'inbound', externalId: p.cid, content: { type: 'text', text: p.text }, sentAt: new Date().toISOString() }, true);
      } else if (f.type === 'message') onMsg(f.message);
      else if (f.type === 'typing') showTyping(!!f.on);
      else if (f.type === 'queue') showQueue(f.position, f.estimatedWaitSeconds);
      else if (f.type === 'error' && f.clientMessageId) onSendError(f);
      // other 'error's: the close code that follows decides; 'pong': liveness only
    };
    s.onclose = function (ev) { closed(s, ev.code); };
  }
  // A refused message: rate limited → the same message again a second later; invalid → marked failed.
  function onSendError(f) {
    var p = findPending(f.clientMessageId);
    if (!p || p.accepted) return;
    // Not stored: sent again, same clientMessageId (rate_limited: a second later; busy: the gateway is full, 3 s).
    if (f.code === 'rate_limited' || f.code === 'busy') { p.sock = null; holdFor(p, f.code === 'busy' ? 3000 : 1000); return; }
    dropPending(p, 'failed');
    setErr(f.message || 'Message could not be sent.');
  }
  function arm(s) {
    clearTimeout(liveTimer);
    liveTimer = setTimeout(function () { if (sock === s) { closed(s, 4000); try { s.close(); } catch (e) { /* ignore */ } } }, 10000);
  }
  function closed(s, code) {
    if (s && sock !== s) return;
    sock = null; ready = false; typingOn = false;
    clearInterval(pingTimer); clearTimeout(liveTimer);
    if (code === 4401 || code === 4403 || code === 4404) return die(code);
    if ((code === 1009 || code === 4400) && lastSent && findPending(lastSent.cid) && !lastSent.accepted) {
      dropPending(lastSent, 'failed'); // refused by the gateway: don't re-send it forever
      setErr(code === 1009 ? 'Message too long.' : 'Message could not be sent.');
    }
    if (!s || !s.up) fails++;
    else if (Date.now() - s.up > 10000) attempt = 0; // stable for a while: restart the backoff
    if (mode === 'rest') { retryTimer = setTimeout(connect, 30000); return; }
    if (fails >= 3) return enterRest();
    var d = Math.min(15000, 500 * Math.pow(2, attempt++)); // 0.5 s, 1 s, 2 s ... 15 s, plus jitter
    retryTimer = setTimeout(connect, d + Math.random() * d * 0.3);
  }
  function die(code) {
    fatal = true;
    clearTimeout(retryTimer); clearTimeout(pollTimer);
    if (code === 4401 && !cfg.userId) { st = { lastSeq: 0 }; save(); } // invalid stored token: start fresh next load
    setErr(code === 4401 ? 'Chat session could not be verified.' : code === 4403 ? 'Chat is not available on this site.' : 'This chat is not available.');
    input.disabled = sendBtn.disabled = true;
    if (sock) { var s = sock; sock = null; try { s.close(); } catch (e) { /* ignore */ } }
  }
  W.addEventListener('online', function () { if (started && !sock && mode === 'ws') { attempt = 0; connect(); } });

  // ---- REST fallback: after 3 failed connects, poll every 3 s and retry the WebSocket every 30 s ----
  var restReady = false, pollTimer;
  // A request that never settles would hold every later message: each gives up after 15 s (sent again later).
  function req(method, p, body) {
    var o = { method: method, credentials: 'omit', cache: 'no-store' };
    if (body) { o.headers = { 'content-type': 'application/json' }; o.body = JSON.stringify(body); }
    var abort = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = abort && setTimeout(function () { abort.abort(); }, 15000);
    if (abort) o.signal = abort.signal;
    return fetch(httpBase + p, o).then(function (r) {
      return r.text().then(function (t) {
        if (!r.ok) { var e = new Error('HTTP ' + r.status); e.status = r.status; throw e; }
        try { return JSON.parse(t) || {}; } catch (x) { return {}; }
      });
    }).then(function (v) { clearTimeout(timer); return v; }, function (e) { clearTimeout(timer); throw e; });
  }
  function restErr(e) { if (e && [401, 403, 404].indexOf(e.status) >= 0) die(4000 + e.status); }
  function enterRest() {
    mode = 'rest'; restReady = false;
    poll();
    retryTimer = setTimeout(connect, 30000);
  }
  function poll() {
    clearTimeout(pollTimer);
    if (mode !== 'rest' || fatal) return;
    var q = '?visitorId=' + encodeURIComponent(st.visitorId || '') + '&visitorToken=' + encodeURIComponent(st.visitorToken || '') + '&after=' + shownSeq;
    (restReady
      ? req('GET', '/messages' + q).then(function (r) { if (mode === 'rest' && Array.isArray(r.messages)) r.messages.forEach(function (m) { onMsg(m); }); })
      : req('POST', '/session', helloFields()).then(function (w) { if (mode === 'rest') { welcome(w); restReady = true; setErr(''); } })
    ).then(null, restErr).then(function () {
      if (mode !== 'rest' || fatal) return;
      flush();
      pollTimer = setTimeout(poll, 3000);
    });
  }

  // ---- outgoing typing: on at most every 2 s while typing, off after 3 s idle or on send ----
  function stopTyping() {
    clearTimeout(typingStop);
    if (typingOn) { typingOn = false; wsSend({ type: 'typing', on: false }); }
    typingSentAt = 0;
  }
  input.addEventListener('input', function () {
    if (!input.value) return stopTyping();
    if (Date.now() - typingSentAt >= 2000 && ready && wsSend({ type: 'typing', on: true })) { typingSentAt = Date.now(); typingOn = true; }
    clearTimeout(typingStop);
    typingStop = setTimeout(stopTyping, 3000);
  });

  // ---- UI + public API ----
  function toggle(show) {
    panel.hidden = !show;
    launcher.setAttribute('aria-expanded', String(show));
    launcher.setAttribute('aria-label', show ? 'Close chat' : 'Open chat');
    if (!show) return;
    setUnread(0);
    start();
    scrollDown();
    try { input.focus(); } catch (e) { /* ignore */ }
  }
  function open() { toggle(true); }
  function close() { toggle(false); }
  launcher.addEventListener('click', function () { toggle(panel.hidden); });
  xBtn.addEventListener('click', close);
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    if (sendText(input.value)) { input.value = ''; stopTyping(); }
  });

  W.GatewayChat = {
    open: open,
    close: close,
    send: sendText, // -> clientMessageId, or null
    onMessage: function (cb) { // cb(Message) for each message shown; returns unsubscribe
      if (typeof cb === 'function') listeners.push(cb);
      return function () { var k = listeners.indexOf(cb); if (k >= 0) listeners.splice(k, 1); };
    }
  };

  function mount() {
    var h = readJson(W.sessionStorage, HKEY);
    if (h && h.v && h.v === st.visitorId && Array.isArray(h.m)) h.m.forEach(function (m) { onMsg(m, true); });
    (D.head || D.documentElement).appendChild(el('style', null, null, CSS));
    D.body.appendChild(root);
    if (ds.open === 'true') open();
    else if (st.visitorId) start(); // returning visitor: connect now so replies raise the unread badge
  }
  if (D.body) mount(); else D.addEventListener('DOMContentLoaded', mount);
})();
