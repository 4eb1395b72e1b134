// The rep page: plain JavaScript, no build step, nothing from another host.
// Everything that comes from outsiders (subjects, names, addresses, URLs,
// user agents) is put in the page as text (textContent), never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
let source = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function when(iso) {
  const t = el('time', new Date(iso).toLocaleString());
  t.dateTime = iso;
  return t;
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, options || {}));
  if (r.status === 401) { signedOut(); throw new Error('signed out'); }
  if (!r.ok) throw new Error(path + ': ' + r.status);
  return r.json();
}

function show(id, on) { $(id).hidden = !on; }

function signedOut() {
  if (source) { source.close(); source = null; }
  for (const id of ['who', 'live', 'notify', 'signout', 'alerts-section', 'messages-section', 'timeline-section']) show(id, false);
  show('signin', true);
}

async function signIn(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  show('signin-error', false);
  const r = await fetch('/v1/session', { method: 'POST', headers: { Authorization: 'Bearer ' + token }, credentials: 'same-origin' });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    $('signin-error').textContent = 'Not signed in: ' + (body.error || r.status);
    show('signin-error', true);
    return;
  }
  $('token').value = '';
  start();
}

async function signOut() {
  await fetch('/v1/session', { method: 'DELETE', credentials: 'same-origin' });
  signedOut();
}

function alertItem(a, fresh) {
  const li = el('li', null, fresh ? 'fresh' : '');
  li.dataset.id = a.id;
  li.appendChild(when(a.occurred_at));
  li.appendChild(el('span', a.text, 'alert-text'));
  li.addEventListener('click', () => timeline(a.message));
  return li;
}

function addAlert(a, fresh) {
  const list = $('alerts');
  if (list.querySelector('li[data-id="' + Number(a.id) + '"]')) return;
  list.insertBefore(alertItem(a, fresh), list.firstChild);
  show('no-alerts', false);
  if (fresh && 'Notification' in window && Notification.permission === 'granted') {
    new Notification('mailbeacon', { body: a.text, tag: 'mb-' + a.id });
  }
}

function listen() {
  if (source) source.close();
  source = new EventSource('/v1/alerts/stream');
  source.onopen = () => { $('live').textContent = 'live'; $('live').className = 'status on'; show('live', true); };
  source.onerror = () => { $('live').textContent = 'reconnecting…'; $('live').className = 'status off'; };
  source.onmessage = (m) => {
    const a = JSON.parse(m.data);
    addAlert(a, true);
    messages();
  };
}

function yesNo(v) { return el('td', v ? 'yes' : 'no', v ? 'yes' : 'no'); }

async function messages() {
  const list = await api('/v1/messages');
  const body = $('messages');
  body.replaceChildren();
  for (const m of list) {
    const tr = el('tr', null, 'message');
    const sent = el('td');
    sent.appendChild(when(m.sent_at));
    tr.appendChild(sent);
    tr.appendChild(el('td', m.subject));
    tr.appendChild(el('td', (m.recipients || []).map((r) => r.name ? r.name + ' <' + r.address + '>' : r.address).join(', ')));
    tr.appendChild(yesNo(m.opened));
    tr.appendChild(yesNo(m.clicked));
    tr.addEventListener('click', () => timeline(m.message));
    body.appendChild(tr);
  }
}

async function timeline(id) {
  const m = await api('/v1/messages/' + encodeURIComponent(id));
  $('timeline-title').textContent = 'Timeline: ' + m.subject;
  const names = {};
  for (const r of m.recipients) names[r.i] = r.name ? r.name + ' <' + r.address + '>' : r.address;
  const body = $('timeline');
  body.replaceChildren();
  for (const e of m.events) {
    const tr = el('tr');
    const t = el('td');
    t.appendChild(when(e.occurred_at));
    tr.appendChild(t);
    tr.appendChild(el('td', e.kind === 'click' ? 'click ' + (e.url || '') : e.kind));
    tr.appendChild(el('td', e.recipient_idx === 0 ? 'someone of ' + m.recipients.map((r) => r.address).join(', ') : names[e.recipient_idx] || ''));
    tr.appendChild(el('td', (e.class || 'unclassified') + (e.final ? '' : ' (may change)'), 'class-' + (e.class || 'none')));
    tr.appendChild(el('td', e.reason || ''));
    body.appendChild(tr);
  }
  show('timeline-section', true);
}

async function start() {
  let me;
  try { me = await api('/v1/me'); } catch (e) { return; }
  show('signin', false);
  $('who').textContent = 'Signed in as ' + me.rep + (me.reads.length > 1 ? ' (also reading ' + me.reads.slice(1).join(', ') + ')' : '');
  for (const id of ['who', 'signout', 'alerts-section', 'messages-section']) show(id, true);
  if ('Notification' in window && Notification.permission === 'default') show('notify', true);
  for (const a of await api('/v1/alerts?limit=50')) addAlert(a, false);
  await messages();
  listen();
}

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('timeline-close').addEventListener('click', () => show('timeline-section', false));
  $('notify').addEventListener('click', async () => {
    await Notification.requestPermission();
    show('notify', Notification.permission === 'default');
  });
  start();
});
