// The officer console: one vanilla ES module, no framework, no build step.
// It talks to the van only through the local API (/api/v1, docs/api.md) and keeps no workflow
// state of its own: every screen is re-read from the API, so a reload or a dropped connection
// loses nothing. Text comes only from the message catalogues (messages/ar.json, en.json);
// DOM is built with textContent, never innerHTML, so no value from the API is parsed as markup.
//
// Security: the session token lives in sessionStorage and travels only in the Authorization
// header (and, for EventSource, which cannot set headers, in the event stream's query). A
// browser never attaches that header by itself, so another site cannot make a request with the
// officer's session: that is the CSRF defence, and why the token must never be put in a cookie.

const API = '/api/v1';
const S = {
  lang: localStorage.getItem('console.lang') || 'ar',
  digits: localStorage.getItem('console.digits') || 'arab',
  token: sessionStorage.getItem('console.token'),
  officer: JSON.parse(sessionStorage.getItem('console.officer') || 'null'),
  msgs: {},
  schedule: null,
  devices: {},
  progress: {},
  es: null,
  view: null,
  refreshTimer: null,
};

// ---------- text, numbers, dates ----------

/** The message `key` in the chosen language, its digits in the chosen style. */
function t(key, vars) { return dig(tRaw(key, vars)); }
/** The message as written in the catalogue (the digit toggle's own label keeps its digits). */
function tRaw(key, vars) {
  let s = S.msgs[S.lang]?.[key] ?? S.msgs.en?.[key];
  if (s === undefined) { console.warn('missing message', key); return key; }
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}
function tOr(key, fallback) { return S.msgs[S.lang]?.[key] ?? fallback; }

const ARABIC_DIGITS = '٠١٢٣٤٥٦٧٨٩';
/** ASCII digits in `s` shown as the officer chose (Arabic-Indic or Latin). */
function dig(s) {
  s = String(s ?? '');
  return S.digits === 'arab' ? s.replace(/[0-9]/g, (d) => ARABIC_DIGITS[d]) : s;
}
function num(n) { return new Intl.NumberFormat(locale(), { numberingSystem: S.digits }).format(n); }
function locale() { return S.lang === 'ar' ? 'ar-EG' : 'en-GB'; }
function money(piastres) {
  const f = new Intl.NumberFormat(locale(), { numberingSystem: S.digits, minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return t('money', { amount: f.format(piastres / 100) });
}
/** An instant shown in Africa/Cairo, whatever the tablet's own zone. */
function when(iso, withDate) {
  if (!iso) return '—';
  const o = { timeZone: 'Africa/Cairo', hour: '2-digit', minute: '2-digit', numberingSystem: S.digits };
  if (withDate) Object.assign(o, { year: 'numeric', month: '2-digit', day: '2-digit' });
  return new Intl.DateTimeFormat(locale(), o).format(new Date(iso));
}

// ---------- DOM ----------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) e.append(k);
  return e;
}
/** An identifier (national ID, receipt number, masked card number) isolated and shown exactly
 * in typed order. `isolate-override` (app.css) matters with Arabic-Indic digits: they are
 * "Arabic numbers" to the bidi algorithm, so `411111******1010` would otherwise display as
 * `1010******411111` even inside a left-to-right isolate. */
function ltr(text, cls) { return el('bdi', { dir: 'ltr', class: 'ltr ' + (cls || '') }, dig(text)); }
function btn(key, act, onclick, cls) { return el('button', { type: 'button', 'data-act': act, class: cls || '', onclick }, t(key)); }
function chip(kind, key) { return el('span', { class: 'chip ' + kind, 'data-state': kind }, t(key)); }
function main() { return document.getElementById('main'); }
function show(...kids) { const m = main(); m.replaceChildren(...kids); }
function heading(key) { return el('h1', {}, t(key)); }

function banner(text) {
  const b = document.getElementById('banner');
  b.hidden = !text;
  b.textContent = text || '';
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.en || `HTTP ${status}`);
    this.status = status;
    this.error = body?.error || null;
    this.errors = body?.errors || (body?.error ? [body.error] : []);
  }
}

async function api(method, path, body) {
  const headers = {};
  if (S.token) headers.Authorization = 'Bearer ' + S.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    banner(t('error.network'));
    throw new ApiError(0, { error: { code: 'network', ar: t('error.network'), en: t('error.network') } });
  }
  banner('');
  if (r.status === 204) return null;
  const isJson = (r.headers.get('content-type') || '').includes('json');
  const data = isJson ? await r.json() : await r.blob();
  if (!r.ok) {
    if (r.status === 401 && path !== '/session') { forget(); go('login'); }
    throw new ApiError(r.status, isJson ? data : null);
  }
  return data;
}

/** The API's own words for an error, in the chosen language. */
function errText(e) {
  if (e instanceof ApiError && e.error) return dig(e.error[S.lang] || e.error.en);
  return t('error.unexpected');
}
function errorBox() { return el('div', { class: 'error', role: 'alert', 'data-role': 'error', hidden: true }); }
function showError(box, e) {
  box.hidden = false;
  box.replaceChildren(el('span', {}, errText(e)));
  if (e instanceof ApiError && e.error?.code) box.append(' ', el('bdi', { dir: 'ltr', class: 'code' }, e.error.code));
}
/** Puts each error next to the input its `field` names; the rest in `box`. */
function showFieldErrors(form, box, e) {
  form.querySelectorAll('.field-error').forEach((x) => { x.textContent = ''; x.hidden = true; });
  form.querySelectorAll('[aria-invalid]').forEach((x) => x.removeAttribute('aria-invalid'));
  const rest = [];
  for (const er of e.errors || []) {
    const slot = er.field && fieldSlot(form, er.field);
    if (slot) {
      slot.hidden = false;
      slot.textContent = dig(er[S.lang] || er.en);
      slot.previousElementSibling?.setAttribute('aria-invalid', 'true');
    } else rest.push(er);
  }
  if (rest.length || !(e.errors || []).length) showError(box, rest.length ? Object.assign(new ApiError(e.status, { error: rest[0] })) : e);
  else box.hidden = true;
}
function fieldSlot(form, path) {
  // `vehicle.plate.letters` falls back to `vehicle.plate`, then `vehicle`.
  const parts = path.split('.');
  while (parts.length) {
    const s = form.querySelector(`.field-error[data-for="${CSS.escape(parts.join('.'))}"]`);
    if (s) return s;
    parts.pop();
  }
  return null;
}

// ---------- session ----------

function remember(token, officer) {
  S.token = token; S.officer = officer;
  sessionStorage.setItem('console.token', token);
  sessionStorage.setItem('console.officer', JSON.stringify(officer));
}
function forget() {
  S.token = null; S.officer = null;
  sessionStorage.removeItem('console.token');
  sessionStorage.removeItem('console.officer');
  if (S.es) { S.es.close(); S.es = null; }
  setLive(null);
  alarmEvent(null);
}
const isSupervisor = () => S.officer?.role === 'supervisor';

// ---------- live events ----------

function setLive(state) {
  const l = document.getElementById('live');
  l.hidden = !state;
  if (state) l.dataset.state = state; else delete l.dataset.state;
  if (state) l.textContent = t('live.' + state);
}

/** The power-fail and tamper alarms (GET /alarms, `alarm` events) above every screen. Kept in
 * `S.alarm` so a language switch redraws them at once. A supervisor is offered the clear action
 * while the alarm is latched, also with the box still open: the van then answers why not
 * (`tamper.switch_open`, "close the box first") in the dialog. */
function showAlarm(a) {
  S.alarm = a || null;
  const box = document.getElementById('alarm');
  const kids = [];
  if (a?.power_failing) kids.push(el('p', { 'data-alarm': 'power' }, t('alarm.power_failing')));
  if (a?.tamper?.latched) {
    kids.push(el('p', { 'data-alarm': 'tamper' }, t('alarm.tamper')));
    if (a.tamper.switch_open) kids.push(el('p', { 'data-alarm': 'tamper-open' }, t('alarm.tamper_open')));
    if (isSupervisor()) {
      kids.push(btn('alarm.tamper_clear', 'tamper-clear', () => askReason('alarm.tamper_clear_title', (reason) => api('POST', '/tamper/clear', { reason }).then(alarmEvent))));
    }
  }
  box.replaceChildren(...kids);
  box.hidden = !kids.length;
}
/** An alarm state newer than any `GET /alarms` still on its way (whose answer is then dropped). */
function alarmEvent(a) { S.alarmSeq = (S.alarmSeq || 0) + 1; showAlarm(a); }
function readAlarms() {
  const n = S.alarmSeq = (S.alarmSeq || 0) + 1;
  api('GET', '/alarms').then((a) => { if (n === S.alarmSeq) showAlarm(a); }).catch(() => {});
}

function connectEvents() {
  if (S.es || !S.token) return;
  const es = new EventSource(`${API}/events?token=${encodeURIComponent(S.token)}`);
  S.es = es;
  es.onopen = () => setLive('on');
  es.onerror = () => {
    setLive('off');
    if (es.readyState === EventSource.CLOSED) {
      // Refused (session gone) or the van restarted: check the session, then reconnect.
      S.es = null;
      setTimeout(() => api('GET', '/session').then(() => connectEvents()).catch(() => {}), 2000);
    }
  };
  es.addEventListener('txn', (ev) => {
    const d = JSON.parse(ev.data);
    if (S.view?.txn === d.txn || ['bookings', 'services'].includes(S.view?.name)) refreshSoon();
  });
  es.addEventListener('progress', (ev) => {
    const d = JSON.parse(ev.data);
    document.body.dataset.progressEvents = String(Number(document.body.dataset.progressEvents || 0) + 1);
    (S.progress[d.txn] ||= {})[d.step] = d.text;
    const slot = document.querySelector(`[data-progress="${CSS.escape(d.step)}"]`);
    if (slot && S.view?.txn === d.txn) slot.textContent = d.text;
  });
  es.addEventListener('device', (ev) => {
    const d = JSON.parse(ev.data);
    S.devices[d.device] = d.health;
    deviceIndicator();
    if (S.view?.name === 'devices') refreshSoon();
  });
  es.addEventListener('alarm', (ev) => alarmEvent(JSON.parse(ev.data).alarm));
  es.addEventListener('lagged', () => refreshSoon());
}

function refreshSoon() {
  clearTimeout(S.refreshTimer);
  S.refreshTimer = setTimeout(() => render(false), 150);
}

// ---------- chrome ----------

const NAV = ['bookings', 'services', 'devices', 'shift', 'sync'];

function chrome() {
  const html = document.documentElement;
  html.lang = S.lang;
  html.dir = S.lang === 'ar' ? 'rtl' : 'ltr';
  document.querySelectorAll('[data-i18n]').forEach((e) => { e.textContent = t(e.dataset.i18n); });
  document.getElementById('lang').textContent = t('toggle.lang');
  document.getElementById('digits').textContent = tRaw(S.digits === 'arab' ? 'toggle.digits_latn' : 'toggle.digits_arab');
  const nav = document.getElementById('nav');
  nav.replaceChildren(...(S.token ? NAV.map((n) => el('a', {
    href: '#/' + n, 'data-nav': n, class: S.view?.name === n ? 'current' : '',
  }, t('nav.' + n))) : []));
  document.getElementById('logout').hidden = !S.token;
  const who = document.getElementById('who');
  who.replaceChildren();
  if (S.officer) who.append(S.lang === 'ar' ? S.officer.name_ar : S.officer.name_en, ' ', chip('role', 'role.' + S.officer.role));
  const live = document.getElementById('live');
  if (live.dataset.state) live.textContent = t('live.' + live.dataset.state);
  deviceIndicator();
  showAlarm(S.alarm);
}

function deviceIndicator() {
  const faults = Object.values(S.devices).filter((h) => h.state === 'fault' || h.state === 'disconnected').length;
  const a = document.querySelector('[data-nav="devices"]');
  if (a) a.textContent = faults ? t('nav.devices_faults', { n: num(faults) }) : t('nav.devices');
  if (a) a.classList.toggle('alert', faults > 0);
}

// ---------- routing ----------

function go(name, arg) { location.hash = '#/' + name + (arg ? '/' + encodeURIComponent(arg) : ''); }
function route() {
  const h = location.hash.replace(/^#\/?/, '');
  const [pathPart, query] = h.split('?');
  const [name, ...rest] = pathPart.split('/');
  const path = rest.join('/');
  return { name: name || 'bookings', arg: path ? decodeURIComponent(path) : null, query: new URLSearchParams(query || '') };
}

// Renders never overlap: a render asked for while one runs is done once more right after it, so
// a slow answer can never paint over a newer screen (or wipe what the officer is typing twice).
let rendering = null;
let renderAgain = false;
let renders = 0;
async function render(fresh = true) {
  if (rendering) { renderAgain = true; return rendering; }
  rendering = (async () => {
    do { renderAgain = false; await renderOnce(fresh); } while (renderAgain);
  })();
  try { await rendering; } finally { rendering = null; }
}

async function renderOnce(fresh) {
  const r = route();
  if (!S.token && r.name !== 'login') { go('login'); return; }
  if (S.token && r.name === 'login') { go('bookings'); return; }
  const screens = { login: viewLogin, bookings: viewBookings, services: viewServices, new: viewNew, txn: viewTxn, devices: viewDevices, shift: viewShift, sync: viewSync };
  const f = screens[r.name] || viewBookings;
  S.view = { name: r.name, txn: r.name === 'txn' ? r.arg : null, fresh };
  chrome();
  if (S.token) {
    connectEvents();
    readAlarms();
    if (!Object.keys(S.devices).length) api('GET', '/devices').then((d) => { Object.assign(S.devices, d); deviceIndicator(); }).catch(() => {});
  }
  try {
    await f(r);
  } catch (e) {
    const box = errorBox(); showError(box, e);
    show(box, btn('action.retry', 'retry', () => render()));
  }
  document.body.dataset.screen = r.name;
  document.body.dataset.ready = String(++renders);
  // How long the first screen took from navigation (printed by the browser test, not asserted).
  if (renders === 1) document.body.dataset.firstScreenMs = String(Math.round(performance.now()));
}

// ---------- screens ----------

function field(name, labelKey, input, hintKey) {
  input.name = name; input.id = 'f-' + name;
  return el('div', { class: 'field' },
    el('label', { for: input.id }, t(labelKey)),
    input,
    el('div', { class: 'field-error', 'data-for': input.dataset.path || name, hidden: true }),
    hintKey ? el('div', { class: 'hint', 'data-hint': name }, t(hintKey)) : el('div', { class: 'hint', 'data-hint': name }));
}
/** Runs `handler` on submit, once at a time: the form's buttons are disabled until it answers
 * (no double payment request from a double tap; shift open waits for the self-test). */
function onSubmit(form, handler) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (form.dataset.busy) return;
    form.dataset.busy = '1';
    const buttons = [...form.querySelectorAll('button')];
    buttons.forEach((b) => { b.disabled = true; });
    try { await handler(ev); } finally {
      delete form.dataset.busy;
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}
function input(attrs) { return el('input', Object.assign({ autocomplete: 'off' }, attrs)); }
function ltrInput(attrs) { return input(Object.assign({ dir: 'ltr', inputmode: 'numeric' }, attrs)); }
function select(options, value, path) {
  return el('select', { 'data-path': path }, ...options.map(([v, key]) => el('option', { value: v, selected: v === value }, t(key))));
}

async function viewLogin() {
  const box = errorBox();
  const form = el('form', { class: 'card narrow', 'data-form': 'login' },
    heading('login.title'),
    field('officer_id', 'login.officer_id', ltrInput({ 'data-path': 'officer_id', required: true })),
    field('pin', 'login.pin', ltrInput({ type: 'password', 'data-path': 'pin', required: true })),
    box,
    el('button', { type: 'submit', class: 'primary', 'data-act': 'login' }, t('login.submit')),
    S.training ? el('p', { class: 'hint', 'data-role': 'sample-officers' }, t('login.sample')) : null);
  onSubmit(form, async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    try {
      const r = await api('POST', '/session', { officer_id: fd.get('officer_id'), pin: fd.get('pin') });
      remember(r.token, r.officer);
      go('bookings');
    } catch (e) { showFieldErrors(form, box, e); }
  });
  show(form);
  form.querySelector('input').focus();
}

const VEHICLE_SERVICES = ['vehicle_licence_renewal', 'vehicle_licence_replacement', 'e_sticker_issue', 'e_sticker_replacement', 'inspection'];
const LICENCE_SERVICES = ['driving_licence_renewal', 'driving_licence_replacement', 'driving_licence_update'];
const ALL_SERVICES = [...VEHICLE_SERVICES.slice(0, 4), ...LICENCE_SERVICES, 'inspection', 'supplies'];

/** A plate as Egyptian plates read: its Arabic letters right to left, then its number, each
 * isolated so neither reorders the other or the text around them. */
function plate(p) {
  return el('bdi', { dir: 'rtl', class: 'plate' }, el('bdi', { dir: 'rtl' }, p.letters), ' ', ltr(p.digits, 'plate-digits'));
}

async function viewBookings() {
  const [bookings, shift, open] = await Promise.all([api('GET', '/bookings'), api('GET', '/shift'), api('GET', '/services?state=open')]);
  const kids = [heading('bookings.title')];
  if (!shift) kids.push(el('div', { class: 'notice', 'data-role': 'no-shift' }, t('shift.none'), ' ', btn('shift.open_go', 'go-shift', () => go('shift'))));
  if (open.length) {
    kids.push(el('h2', {}, t('bookings.in_progress')));
    kids.push(el('ul', { class: 'list' }, ...open.map((v) => txnRow(v))));
  }
  kids.push(el('div', { class: 'row' }, btn('bookings.walk_up', 'walk-up', () => go('new'), 'primary')));
  const box = errorBox();
  kids.push(box);
  if (!bookings.length) kids.push(el('p', { class: 'empty' }, t('bookings.none')));
  const list = el('ul', { class: 'list', 'data-list': 'bookings' });
  for (const b of bookings) {
    const bk = b.booking;
    const acts = el('div', { class: 'actions' });
    if (b.txn) acts.append(btn('bookings.open_txn', 'open-txn', () => go('txn', b.txn)));
    else if (['assigned', 'arrived'].includes(b.state)) {
      acts.append(btn('bookings.serve', 'serve', () => go('new', bk.id), 'primary'));
      if (b.state === 'assigned') acts.append(btn('bookings.arrived', 'arrived', () => moveBooking(bk.id, 'arrived', null, box)));
      acts.append(btn('bookings.no_show', 'no-show', () => askReason('bookings.no_show_reason', (r) => moveBooking(bk.id, 'no_show', r, box))));
    }
    const pl = bk.dossier?.vehicle?.plate;
    list.append(el('li', { class: 'item', 'data-booking': bk.id },
      el('div', { class: 'when' }, when(bk.slot.start)),
      el('div', { class: 'what' },
        el('div', { class: 'title' }, t('service.' + bk.service)),
        el('div', {}, el('bdi', {}, bk.citizen.name_ar), ' · ', ltr(bk.citizen.national_id, 'nid'), pl ? [' · ', plate(pl)] : null),
        el('div', { class: 'sub' }, el('bdi', {}, bk.place.address_ar), ' · ', t('channel.' + bk.channel))),
      el('div', { class: 'state' }, chip(b.state, 'booking.' + b.state)),
      acts));
  }
  kids.push(list);
  show(...kids);
}

async function moveBooking(id, to, reason, box) {
  try { await api('POST', `/bookings/${encodeURIComponent(id)}/state`, reason ? { to, reason } : { to }); render(false); } catch (e) { showError(box, e); }
}

/** A reason dialog (void, override, no-show, cancel, reprint): calls `ok(reason)`. */
function askReason(titleKey, ok, extra) {
  const box = errorBox();
  const reason = el('textarea', { name: 'reason', rows: 2, required: true });
  const dlg = el('dialog', { class: 'card', 'data-dialog': 'reason' });
  const form = el('form', { method: 'dialog', novalidate: true },
    el('h2', {}, t(titleKey)), extra || null,
    el('div', { class: 'field' }, el('label', {}, t('reason.label')), reason, el('div', { class: 'field-error', 'data-for': 'reason', hidden: true })),
    box,
    el('div', { class: 'row' },
      el('button', { type: 'submit', class: 'primary', 'data-act': 'confirm' }, t('action.confirm')),
      btn('action.back', 'dismiss', () => { dlg.close(); dlg.remove(); })));
  onSubmit(form, async (ev) => {
    ev.preventDefault();
    if (!reason.value.trim()) { showError(box, new ApiError(0, { error: { ar: t('reason.required'), en: t('reason.required') } })); return; }
    try { await ok(reason.value.trim(), form); dlg.close(); dlg.remove(); } catch (e) { showFieldErrors(form, box, e); }
  });
  dlg.append(form);
  document.body.append(dlg);
  dlg.showModal();
  reason.focus();
}

function txnRow(v) {
  return el('li', { class: 'item', 'data-txn': v.txn },
    el('div', { class: 'when' }, when(v.opened_at)),
    el('div', { class: 'what' }, el('div', { class: 'title' }, t('service.' + v.service)),
      el('div', {}, el('bdi', {}, v.citizen.name_ar), ' · ', ltr(v.txn, 'txn-id'))),
    el('div', { class: 'state' }, chip(v.state, 'state.' + v.state)),
    el('div', { class: 'actions' }, btn('bookings.open_txn', 'open-txn', () => go('txn', v.txn))));
}

async function viewServices() {
  const list = await api('GET', '/services?state=today');
  show(heading('services.title'), list.length ? el('ul', { class: 'list' }, ...list.map(txnRow)) : el('p', { class: 'empty' }, t('services.none')));
}

async function schedule() {
  if (!S.schedule) S.schedule = await api('GET', '/schedule');
  return S.schedule;
}

// The service form: citizen and vehicle data with inline validation through POST /validate.
async function viewNew(r) {
  const booking = r.arg ? await api('GET', `/bookings/${encodeURIComponent(r.arg)}`) : null;
  const bk = booking?.booking;
  const sch = await schedule();
  let service = bk ? bk.service : (r.query.get('service') || 'vehicle_licence_renewal');
  const box = errorBox();
  const c = bk?.citizen || {};
  const v = bk?.dossier?.vehicle || null;
  const form = el('form', { class: 'card', 'data-form': 'service', novalidate: true });
  const parts = [heading(bk ? 'new.title_booking' : 'new.title_walk_up')];
  if (bk) parts.push(el('p', {}, t('service.' + service), ' · ', ltr(bk.id, 'booking-id')));
  else {
    const s = select(ALL_SERVICES.map((x) => [x, 'service.' + x]), service, 'service');
    s.addEventListener('change', () => go('new?service=' + s.value));
    parts.push(field('service', 'new.service', s));
  }
  parts.push(el('h2', {}, t('new.citizen')),
    field('national_id', 'field.national_id', ltrInput({ value: c.national_id || '', 'data-path': 'citizen.national_id', 'data-validate': 'national_id', maxlength: 14 })),
    field('name_ar', 'field.name_ar', input({ value: c.name_ar || '', 'data-path': 'citizen.name_ar', dir: 'rtl', lang: 'ar' })),
    field('name_en', 'field.name_en', input({ value: c.name_en || '', 'data-path': 'citizen.name_en', dir: 'ltr', lang: 'en' })),
    field('phone', 'field.phone', ltrInput({ value: c.phone || '', 'data-path': 'citizen.phone', 'data-validate': 'phone', type: 'tel' })));
  if (VEHICLE_SERVICES.includes(service)) {
    parts.push(el('h2', {}, t('new.vehicle')),
      el('div', { class: 'row' },
        field('plate_letters', 'field.plate_letters', input({ value: v?.plate?.letters || '', 'data-path': 'vehicle.plate.letters', 'data-validate': 'plate', dir: 'rtl', lang: 'ar' })),
        field('plate_digits', 'field.plate_digits', ltrInput({ value: v?.plate?.digits || '', 'data-path': 'vehicle.plate.digits', 'data-validate': 'plate' }))),
      field('category', 'field.category', select(['private', 'light_transport', 'taxi', 'transport', 'motorcycle'].map((x) => [x, 'category.' + x]), v?.category || 'private', 'vehicle.category')),
      field('vin', 'field.vin', input({ value: v?.vin || '', 'data-path': 'vehicle.vin', 'data-validate': 'vin', dir: 'ltr', maxlength: 17, autocapitalize: 'characters' })),
      field('engine_no', 'field.engine_no', input({ value: v?.engine_no || '', 'data-path': 'vehicle.engine_no', 'data-validate': 'engine_no', dir: 'ltr' })),
      field('make_model', 'field.make_model', input({ value: v?.make_model || '', 'data-path': 'vehicle.make_model' })),
      field('year', 'field.year', ltrInput({ value: v?.year || '', 'data-path': 'vehicle.year' })),
      field('owner_national_id', 'field.owner_national_id', ltrInput({ value: v?.owner_national_id || c.national_id || '', 'data-path': 'vehicle.owner_national_id', 'data-validate': 'national_id', maxlength: 14 })));
  }
  if (LICENCE_SERVICES.includes(service)) {
    parts.push(field('grade', 'field.grade', select(['private', 'third', 'second', 'first', 'motorcycle'].map((x) => [x, 'grade.' + x]), bk?.dossier?.driving_licence?.grade || 'private', 'grade')));
  }
  if (service.endsWith('_replacement') && service !== 'e_sticker_replacement') {
    parts.push(field('replacement', 'field.replacement', select([['lost', 'replacement.lost'], ['damaged', 'replacement.damaged']], 'lost', 'replacement')));
  }
  if (service === 'driving_licence_update') parts.push(field('address', 'field.address', input({ 'data-path': 'changes.address', dir: 'rtl' })));
  if (service === 'supplies') {
    const s = el('select', { 'data-path': 'supplies' }, ...sch.supplies.map((x) => el('option', { value: x.code }, S.lang === 'ar' ? x.label_ar : x.label_en)));
    parts.push(field('supply', 'field.supply', s), field('qty', 'field.qty', ltrInput({ value: '1', 'data-path': 'supplies[0].qty' })));
  }
  parts.push(box, el('div', { class: 'row' },
    el('button', { type: 'submit', class: 'primary', 'data-act': 'open-service' }, t('new.submit')),
    btn('action.back', 'back', () => go('bookings'))));
  form.append(...parts);
  // Inline validation as the officer leaves a field.
  form.querySelectorAll('[data-validate]').forEach((i) => i.addEventListener('change', () => validateField(form, i)));
  onSubmit(form, async (ev) => {
    ev.preventDefault();
    const f = (n) => form.elements[n]?.value.trim();
    const body = { service: bk ? service : f('service'), citizen: { national_id: f('national_id'), name_ar: f('name_ar') } };
    if (bk) body.booking_id = bk.id;
    if (f('name_en')) body.citizen.name_en = f('name_en');
    if (f('phone')) body.citizen.phone = f('phone');
    if (VEHICLE_SERVICES.includes(service)) {
      body.vehicle = Object.assign({}, v || {}, {
        plate: { letters: f('plate_letters'), digits: f('plate_digits') }, category: f('category'), vin: f('vin'),
        engine_no: f('engine_no'), make_model: f('make_model'), owner_national_id: f('owner_national_id'),
      });
      if (f('year')) body.vehicle.year = Number(f('year').replace(/[٠-٩]/g, (d) => ARABIC_DIGITS.indexOf(d))); else delete body.vehicle.year;
    }
    if (LICENCE_SERVICES.includes(service)) body.grade = f('grade');
    if (form.elements.replacement) body.replacement = f('replacement');
    if (service === 'driving_licence_update') body.changes = { address: f('address') };
    if (service === 'supplies') body.supplies = [{ code: f('supply'), qty: Number(f('qty')) || 0 }];
    try {
      const txn = await api('POST', '/services', body);
      go('txn', txn.txn);
    } catch (e) { showFieldErrors(form, box, e); }
  });
  show(form);
}

async function validateField(form, inp) {
  const kind = inp.dataset.validate;
  let body;
  if (kind === 'plate') {
    const letters = form.elements.plate_letters.value.trim(), digits = form.elements.plate_digits.value.trim();
    if (!letters || !digits) return;
    body = { field: 'plate', letters, digits };
  } else {
    if (!inp.value.trim()) return;
    body = { field: kind, value: inp.value.trim() };
  }
  const slot = form.querySelector(`.field-error[data-for="${CSS.escape(inp.dataset.path)}"]`);
  const hint = inp.parentElement.querySelector('.hint');
  try {
    const r = await api('POST', '/validate', body);
    slot.hidden = true; inp.removeAttribute('aria-invalid');
    hint.replaceChildren(el('span', { class: 'ok' }, t('validate.ok')));
    if (r.info?.birth_date) hint.append(' ', t('validate.birth', { date: dig(r.info.birth_date) }));
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 422) return;
    const er = e.errors[0];
    slot.hidden = false; slot.textContent = er[S.lang] || er.en;
    inp.setAttribute('aria-invalid', 'true');
    hint.replaceChildren();
  }
}

// ---------- a transaction: the guided flow ----------

const STAGES = ['data', 'inspection', 'quote', 'payment', 'documents', 'done'];
function stageOf(v) {
  return ({ open: 'inspection', refused: 'quote', quoted: 'quote', paying: 'payment', payment_unknown: 'payment', held: 'payment',
    paid: 'documents', printing: 'documents', encoding: 'documents', labelling: 'documents' })[v.state] || 'done';
}

async function viewTxn(r) {
  const v = await api('GET', `/services/${encodeURIComponent(r.arg)}`);
  const box = errorBox();
  const act = (path, body) => async (ev) => {
    // One request per tap: the button stays disabled until the van answers.
    ev.currentTarget.disabled = true;
    try { await api('POST', `/services/${encodeURIComponent(v.txn)}/${path}`, body); await render(false); } catch (e) {
      // Re-read the transaction (the refusal may have changed it), then say why, in the API's words.
      await render(false);
      const b = document.querySelector('#main [data-role=error]');
      if (b) showError(b, e);
    }
  };
  const stage = stageOf(v);
  const stages = STAGES.filter((s) => s !== 'inspection' || v.inspection || v.state === 'open');
  const head = el('div', { class: 'card txn-head' },
    el('h1', {}, t('service.' + v.service)),
    el('div', { class: 'row' }, ltr(v.txn, 'txn-id'), chip(v.state, 'state.' + v.state)),
    el('div', {}, el('bdi', { 'data-role': 'citizen-name' }, v.citizen.name_ar), ' · ', ltr(v.citizen.national_id, 'nid'),
      v.vehicle ? [' · ', plate(v.vehicle.plate)] : null),
    el('ol', { class: 'stages' }, ...stages.map((s) => el('li', { class: s === stage ? 'current' : (stages.indexOf(s) < stages.indexOf(stage) ? 'past' : '') }, t('stage.' + s)))));
  const body = el('div', { class: 'card', 'data-txn-state': v.state });
  const next = new Set(v.next);

  if (v.state === 'open') body.append(await inspectionForm(v, box));
  if (v.state === 'refused' || v.refusals.length) {
    body.append(el('h2', {}, t('txn.refusals')), el('ul', { class: 'list' }, ...v.refusals.map((rf) => el('li', { class: 'item', 'data-refusal': rf.code },
      el('div', { class: 'what' }, rf[S.lang] || rf.en,
        rf.overridden ? el('div', { class: 'sub' }, t('txn.overridden', { by: rf.overridden.by }), ' — ', el('bdi', {}, rf.overridden.reason)) : null),
      el('div', { class: 'actions' }, !rf.overridden && rf.overridable && next.has('override') && isSupervisor()
        ? btn('txn.override', 'override', () => askReason('txn.override_title', (reason) => api('POST', `/services/${encodeURIComponent(v.txn)}/override`, { code: rf.code, reason }).then(() => render(false))))
        : (!rf.overridden && rf.overridable ? el('span', { class: 'sub' }, t('txn.needs_supervisor')) : null))))));
  }
  if (v.quote) {
    body.append(el('h2', {}, t('txn.quote')), el('table', { class: 'quote' },
      el('tbody', {}, ...v.quote.lines.map((l) => el('tr', {}, el('td', {}, S.lang === 'ar' ? l.label_ar : l.label_en), el('td', { class: 'amount' }, money(l.amount))))),
      el('tfoot', {}, el('tr', {}, el('th', {}, t('txn.total')), el('th', { class: 'amount', 'data-role': 'total' }, money(v.quote.total))))));
  }
  if (v.payment || v.steps.some((s) => s.state !== 'pending') || ['paying', 'payment_unknown'].includes(v.state)) body.append(stepsList(v));
  if (v.held) body.append(el('div', { class: 'notice' }, t('txn.held')));
  if (v.state === 'completed') body.append(await receiptPreview(v));
  if (['cancelled', 'voided', 'reversed', 'voiding'].includes(v.state)) body.append(el('div', { class: 'notice', 'data-role': 'final' }, t('txn.final.' + v.state)));

  const acts = el('div', { class: 'row actions' });
  if (next.has('proceed')) {
    const key = { quoted: 'txn.pay', paid: v.steps.some((s) => ['failed', 'spoiled', 'unknown'].includes(s.state)) ? 'txn.retry' : 'txn.continue', held: 'txn.ask_terminal', voiding: 'txn.retry_reversal' }[v.state] || 'txn.continue';
    acts.append(btn(key, 'proceed', act('proceed'), 'primary'));
  }
  if (next.has('cancel')) acts.append(btn('txn.cancel', 'cancel', () => askReason('txn.cancel_title', (reason) => api('POST', `/services/${encodeURIComponent(v.txn)}/cancel`, { reason }).then(() => render(false)))));
  if (next.has('reprint')) {
    acts.append(btn('txn.reprint', 'reprint', () => {
      const what = select([['receipt', 'reprint.receipt'], ['card', 'reprint.card'], ['label', 'reprint.label']], 'receipt', 'what');
      what.name = 'what';
      askReason('txn.reprint_title', (reason, form) => api('POST', `/services/${encodeURIComponent(v.txn)}/reprint`, { what: form.elements.what.value, reason }).then(() => render(false)),
        el('div', { class: 'field' }, el('label', {}, t('reprint.what')), what));
    }));
  }
  if (next.has('void')) acts.append(btn('txn.void', 'void', () => askReason('txn.void_title', (reason) => api('POST', `/services/${encodeURIComponent(v.txn)}/void`, { reason }).then(() => render(false))), 'danger'));
  if (['completed', 'cancelled', 'voided', 'reversed'].includes(v.state)) acts.append(btn('txn.next_citizen', 'done', () => go('bookings'), 'primary'));
  else acts.append(btn('action.back', 'back', () => go('bookings')));
  body.append(box, acts);
  show(head, body);
}

async function inspectionForm(v, box) {
  const sch = await schedule();
  const toggle = (name, key) => el('label', { class: 'toggle' }, el('input', { type: 'checkbox', name, checked: true }), el('span', {}, t(key)));
  const form = el('form', { 'data-form': 'inspection' },
    el('h2', {}, t('inspection.title')),
    toggle('vin_matches', 'inspection.vin_matches'), toggle('engine_matches', 'inspection.engine_matches'),
    el('div', { class: 'checklist' }, ...sch.inspection_checklist.map((c) => el('label', { class: 'toggle' },
      el('input', { type: 'checkbox', name: 'check', value: c.code, checked: true }), el('span', {}, S.lang === 'ar' ? c.label_ar : c.label_en)))),
    el('div', { class: 'field' }, el('label', { for: 'f-notes' }, t('inspection.notes')), el('textarea', { name: 'notes', id: 'f-notes', rows: 2 })),
    el('button', { type: 'submit', class: 'primary', 'data-act': 'inspect' }, t('inspection.submit')));
  onSubmit(form, async (ev) => {
    ev.preventDefault();
    const checklist = {};
    form.querySelectorAll('input[name=check]').forEach((c) => { checklist[c.value] = c.checked; });
    const body = { vin_matches: form.elements.vin_matches.checked, engine_matches: form.elements.engine_matches.checked, checklist };
    if (form.elements.notes.value.trim()) body.notes = form.elements.notes.value.trim();
    try { await api('POST', `/services/${encodeURIComponent(v.txn)}/inspection`, body); render(false); } catch (e) { showError(box, e); }
  });
  return form;
}

function stepsList(v) {
  const running = { paying: 'payment', payment_unknown: 'payment', printing: 'card', encoding: 'tag', labelling: 'label', voiding: 'reversal' }[v.state];
  const ul = el('ul', { class: 'steps', 'data-role': 'steps' });
  for (const s of v.steps) {
    const state = s.step === running ? 'running' : s.state;
    const li = el('li', { class: 'step ' + state, 'data-step': s.step, 'data-step-state': state },
      el('div', { class: 'title' }, t('step.' + s.step), ' ', chip(state, 'step_state.' + state)),
      el('div', { class: 'progress', 'data-progress': s.step }, state === 'running' ? (S.progress[v.txn]?.[s.step] || t('step.waiting')) : ''));
    if (s.fault) {
      li.append(el('div', { class: 'fault', 'data-fault': s.fault.code }, s.fault[S.lang] || s.fault.en),
        el('div', { class: 'todo' }, t('device.todo'), ' ', S.lang === 'ar' ? s.fault.action_ar : s.fault.action_en));
    }
    ul.append(li);
  }
  if (v.payment && v.state !== 'paying') {
    ul.append(el('li', { class: 'sub' }, t('payment.outcome.' + v.payment.outcome), ' · ', money(v.payment.amount),
      v.payment.card_name ? [' · ', el('bdi', {}, v.payment.card_name)] : null, v.payment.masked_pan ? [' ', ltr(v.payment.masked_pan, 'pan')] : null));
  }
  return el('div', {}, el('h2', {}, t('txn.progress')), ul);
}

async function receiptPreview(v) {
  const frame = el('iframe', { class: 'pdf', title: t('receipt.title'), 'data-role': 'receipt-pdf' });
  const wrap = el('div', { class: 'receipt', 'data-role': 'receipt' },
    el('h2', {}, t('receipt.title')),
    el('dl', {},
      el('dt', {}, t('receipt.number')), el('dd', {}, ltr(v.receipt_no, 'receipt-no')),
      v.completed_at ? [el('dt', {}, t('receipt.completed_at')), el('dd', {}, when(v.completed_at, true))] : null,
      el('dt', {}, t('txn.total')), el('dd', {}, money(v.quote?.total || 0))),
    frame);
  try {
    // The van counts each receipt it hands out (a further copy is a supervisor's reprint), so the
    // console fetches it once per transaction and keeps it for this page's life.
    S.receipts ||= {};
    const pdf = S.receipts[v.txn] ||= await api('GET', `/services/${encodeURIComponent(v.txn)}/receipt?format=roll80`);
    frame.src = URL.createObjectURL(pdf);
    wrap.dataset.pdfBytes = String(pdf.size);
  } catch (e) { wrap.append(el('div', { class: 'notice', 'data-role': 'receipt-error' }, errText(e))); }
  return wrap;
}

// ---------- devices ----------

async function viewDevices() {
  const devs = await api('GET', '/devices');
  Object.assign(S.devices, devs);
  deviceIndicator();
  show(heading('devices.title'), el('ul', { class: 'list', 'data-list': 'devices' }, ...Object.entries(devs).map(([name, h]) => el('li', { class: 'item', 'data-device': name, 'data-device-state': h.state },
    el('div', { class: 'what' }, el('div', { class: 'title' }, t('device.' + name)),
      h.fault ? [el('div', { class: 'fault', 'data-fault': h.fault.code }, h.fault[S.lang] || h.fault.en),
        el('div', { class: 'todo' }, t('device.todo'), ' ', S.lang === 'ar' ? h.fault.action_ar : h.fault.action_en)] : null,
      h.detail ? el('div', { class: 'sub' }, el('bdi', { dir: 'ltr' }, h.detail)) : null),
    el('div', { class: 'state' }, chip(h.state, 'device_state.' + h.state))))));
}

// ---------- shift ----------

function stockFields(prefix) {
  return el('div', { class: 'row' }, ...['cards', 'labels', 'tags'].map((k) => field(k, 'stock.' + k, ltrInput({ 'data-path': `${prefix}.${k}`, required: true }))));
}
function countsOf(form) {
  const o = {};
  for (const k of ['cards', 'labels', 'tags']) {
    const raw = form.elements[k].value.trim().replace(/[٠-٩]/g, (d) => ARABIC_DIGITS.indexOf(d));
    o[k] = /^\d+$/.test(raw) ? Number(raw) : raw;
  }
  return o;
}

async function viewShift(r) {
  if (r?.arg === 'report') {
    // The close's answer is shown once; kept for this tab so a language switch or reload keeps it.
    const rep = JSON.parse(sessionStorage.getItem('console.report') || 'null');
    if (rep) { showReport(rep); return; }
  }
  const shift = await api('GET', '/shift');
  const box = errorBox();
  if (!shift) {
    const form = el('form', { class: 'card', 'data-form': 'shift-open' }, heading('shift.open_title'), el('p', {}, t('shift.open_help')), stockFields('stock'), box,
      el('button', { type: 'submit', class: 'primary', 'data-act': 'shift-open' }, t('shift.open')));
    onSubmit(form, async (ev) => {
      ev.preventDefault();
      try { await api('POST', '/shift/open', { stock: countsOf(form) }); render(false); } catch (e) { showFieldErrors(form, box, e); }
    });
    show(form);
    return;
  }
  const kv = (key, val) => [el('dt', {}, t(key)), el('dd', {}, val)];
  const counts = (o) => `${t('stock.cards')} ${num(o.cards)} · ${t('stock.labels')} ${num(o.labels)} · ${t('stock.tags')} ${num(o.tags)}`;
  const kids = [heading('shift.title'), el('dl', { class: 'card' },
    kv('shift.id', ltr(shift.id)), kv('shift.opened', when(shift.opened_at, true)), kv('shift.opened_by', ltr(shift.opened_by)),
    kv('shift.stock_open', counts(shift.stock_open)), kv('shift.issued', counts(shift.issued)), kv('shift.spoiled', counts(shift.spoiled)),
    kv('shift.completed', num(shift.completed)), kv('shift.payments', `${num(shift.payments.count)} · ${money(shift.payments.amount)}`))];
  if (shift.self_test?.length) {
    kids.push(el('h2', {}, t('shift.self_test')), el('ul', { class: 'list' }, ...shift.self_test.map((s) => el('li', { class: 'item' },
      el('div', { class: 'title' }, t('device.' + s.device)), chip(s.ok ? 'connected' : 'fault', s.ok ? 'self_test.ok' : 'self_test.failed')))));
  }
  if (isSupervisor()) {
    const form = el('form', { class: 'card', 'data-form': 'shift-close' }, el('h2', {}, t('shift.close_title')), el('p', {}, t('shift.close_help')), stockFields('counted'), box,
      el('button', { type: 'submit', class: 'danger', 'data-act': 'shift-close' }, t('shift.close')));
    onSubmit(form, async (ev) => {
      ev.preventDefault();
      try {
        const rep = await api('POST', '/shift/close', { counted: countsOf(form) });
        sessionStorage.setItem('console.report', JSON.stringify(rep));
        go('shift', 'report');
      } catch (e) { showFieldErrors(form, box, e); }
    });
    kids.push(form);
  } else kids.push(el('p', { class: 'hint' }, t('shift.close_needs_supervisor')));
  show(...kids);
}

function showReport(rep) {
  const rows = (list) => el('table', {}, el('tbody', {}, ...list.map((x) => el('tr', {}, el('td', {}, tOr('service.' + x.what, x.what)), el('td', {}, num(x.count)), el('td', { class: 'amount' }, money(x.amount))))));
  const frame = el('iframe', { class: 'pdf', title: t('shift.report'), 'data-role': 'report-pdf' });
  api('GET', `/shift/${encodeURIComponent(rep.shift.id)}/report`).then((b) => { frame.src = URL.createObjectURL(b); }).catch(() => {});
  show(heading('shift.report'), el('div', { class: 'card', 'data-role': 'report' },
    el('div', { class: rep.payments_match ? 'notice ok' : 'notice' }, t(rep.payments_match ? 'report.match' : 'report.mismatch')),
    rep.terminal_error ? el('div', { class: 'error' }, el('bdi', {}, rep.terminal_error)) : null,
    el('h2', {}, t('report.by_service')), rows(rep.by_service),
    el('h2', {}, t('report.by_payment')), rows(rep.by_payment),
    el('h2', {}, t('report.stock')), el('table', {}, el('thead', {}, el('tr', {}, ...['item', 'opening', 'issued', 'spoiled', 'expected', 'counted', 'difference'].map((k) => el('th', {}, t('report.' + k))))),
      el('tbody', {}, ...rep.stock.map((s) => el('tr', { class: s.flagged ? 'flagged' : '' }, el('td', {}, t('stock.' + s.item + 's')), ...['opening', 'issued', 'spoiled', 'expected', 'counted', 'difference'].map((k) => el('td', {}, num(s[k]))))))),
    rep.mismatches.length ? el('div', { class: 'error' }, t('report.mismatches'), ' ', ltr(rep.mismatches.join(', '))) : null,
    rep.held.length ? el('div', { class: 'notice' }, t('report.held', { n: num(rep.held.length) })) : null,
    frame));
}

// ---------- sync ----------

async function viewSync() {
  // GET /sync answers what `vanctl sync status --json` shows (docs/api.md).
  const s = await api('GET', '/sync');
  if (!s.enabled) {
    show(heading('sync.title'), el('p', { class: 'notice', 'data-role': 'sync-unavailable' }, t('sync.unavailable', { why: s.why || '' })));
    return;
  }
  const kv = (key, val) => [el('dt', {}, t(key)), el('dd', {}, val)];
  show(heading('sync.title'), el('dl', { class: 'card', 'data-role': 'sync' },
    kv('sync.pending', num(s.pending ?? 0)),
    kv('sync.acked', s.acked_seq == null ? '—' : el('bdi', {}, num(s.acked_seq))),
    kv('sync.last_sync', when(s.last_success, true)),
    kv('sync.next_try', when(s.next_try, true)),
    kv('sync.last_error', s.last_error ? el('bdi', {}, s.last_error) : t('sync.no_error'))));
}

// ---------- start ----------

async function start() {
  const [ar, en] = await Promise.all(['ar', 'en'].map((l) => fetch(`/console/messages/${l}.json`).then((r) => r.json())));
  S.msgs = { ar, en };
  // Only a training van's login screen lists the sample officers (GET /van is public).
  try { S.training = (await api('GET', '/van')).training === true; } catch (e) { S.training = false; }
  document.getElementById('lang').addEventListener('click', () => {
    S.lang = S.lang === 'ar' ? 'en' : 'ar'; localStorage.setItem('console.lang', S.lang); render(false);
  });
  document.getElementById('digits').addEventListener('click', () => {
    S.digits = S.digits === 'arab' ? 'latn' : 'arab'; localStorage.setItem('console.digits', S.digits); render(false);
  });
  document.getElementById('logout').addEventListener('click', async () => {
    try { await api('DELETE', '/session'); } catch (e) { /* the session may be gone already */ }
    forget(); go('login');
  });
  window.addEventListener('hashchange', () => render());
  if (S.token) {
    try { const s = await api('GET', '/session'); S.officer = s.officer; } catch (e) { forget(); }
  }
  render();
}

start();
