// syncd's web GUI. Plain JavaScript, no framework, no build step.
//
// Rule for everything below: text that comes from the daemon (names, paths, IDs, errors, file
// names — any of which a peer or a file can choose) is put into the page with textContent or
// attribute setters through el(); never with innerHTML. The page's Content-Security-Policy
// forbids inline scripts as a second line of defence.
//
// Data flow: load() fetches the config and every status once; then a long poll on
// /rest/events waits (no CPU) and any event schedules one debounced reload. While the tab is
// visible, connection rates are sampled every 10 s; a hidden tab does nothing but the poll.
'use strict';

(function () {
  const meta = window.metadata || {};
  const myID = String(meta.deviceID || '');
  const idPrefix = myID.slice(0, 5);
  const KEY_STORE = 'syncd-api-key';

  // ---------- small helpers ----------

  function $(id) { return document.getElementById(id); }

  // el('td', {class: 'x', title: t}, child, 'text', ...): children that are strings become
  // text nodes, so untrusted strings can never become markup.
  function el(tag, attrs) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') node.className = v;
        else if (k === 'text') node.textContent = v;
        else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      const c = arguments[i];
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function fmtBytes(n) {
    n = Number(n) || 0;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
  }

  function fmtRate(bps) { return fmtBytes(Math.max(0, bps)) + '/s'; }

  function fmtDuration(s) {
    s = Math.max(0, Math.floor(Number(s) || 0));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + 'd ' + h + 'h ' + m + 'm';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + (s % 60) + 's';
    return (s % 60) + 's';
  }

  function fmtTime(t) {
    if (!t || String(t).startsWith('0001-')) return 'never';
    const d = new Date(t);
    return isNaN(d) ? String(t) : d.toLocaleString();
  }

  function shortID(id) { return String(id).slice(0, 7); }

  // ---------- REST ----------

  function cookie(name) {
    for (const part of document.cookie.split(';')) {
      const i = part.indexOf('=');
      if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
    }
    return '';
  }

  function authHeaders() {
    const h = {};
    const token = cookie('CSRF-Token-' + idPrefix);
    if (token) h['X-CSRF-Token-' + idPrefix] = token;
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) h['X-API-Key'] = key;
    return h;
  }

  class ApiError extends Error {
    constructor(status, text) { super(text || ('HTTP ' + status)); this.status = status; }
  }

  async function api(method, path, body) {
    const opts = { method, headers: authHeaders(), cache: 'no-store' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch('rest/' + path, opts);
    const text = await r.text();
    if (r.status === 403) needLogin();
    // A GUI login was set (here or elsewhere) after this page was loaded.
    if (r.status === 401) banner('A GUI login is now required: reload the page to log in.');
    if (!r.ok) throw new ApiError(r.status, text.trim());
    return text.trim() === '' ? null : JSON.parse(text);
  }

  const get = (path) => api('GET', path);
  const q = encodeURIComponent;

  function needLogin() {
    $('login').hidden = false;
    $('main').hidden = true;
  }

  // ---------- state ----------

  const state = {
    config: null, status: null, version: null, connections: null,
    folderStatus: {}, folderErrors: {}, completion: {}, deviceStats: {}, folderStats: {},
    rates: {}, lastSample: null, open: new Set(['this']),
  };

  function banner(text) {
    const b = $('status-banner');
    b.textContent = text || '';
    b.hidden = !text;
  }

  // A GUI reachable from other machines with no password is worth a loud warning (as
  // Syncthing's): the address in use, and the login from the config.
  function isLoopbackAddress(addr) {
    let host = String(addr || '');
    if (host.startsWith('[')) host = host.slice(1, host.indexOf(']'));
    else if (host.lastIndexOf(':') > 0) host = host.slice(0, host.lastIndexOf(':'));
    return host === 'localhost' || host === '::1' || /^127\./.test(host);
  }

  function renderExposure() {
    const gui = (state.config && state.config.gui) || {};
    const addr = (state.status && state.status.guiAddressUsed) || gui.address || '';
    const exposed = addr !== '' && !isLoopbackAddress(addr) && !(gui.user && gui.password);
    $('exposure-address').textContent = addr;
    $('exposure-banner').hidden = !exposed;
  }

  function deviceName(id) {
    const d = (state.config && state.config.devices || []).find((x) => x.deviceID === id);
    return d && d.name ? d.name : shortID(id);
  }

  function remoteDevices() {
    return (state.config && state.config.devices || []).filter((d) => d.deviceID !== myID);
  }

  // ---------- loading ----------

  let loading = null, again = false;

  async function load() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      try {
        const [config, status, version, connections, deviceStats, folderStats, pendingDevices, pendingFolders] = await Promise.all([
          get('config'), get('system/status'), get('system/version'), get('system/connections'),
          get('stats/device'), get('stats/folder'), get('cluster/pending/devices'), get('cluster/pending/folders')]);
        state.pendingDevices = pendingDevices || {}; state.pendingFolders = pendingFolders || {};
        renderNotices(await get('system/error'));
        state.config = config; state.status = status; state.version = version;
        state.deviceStats = deviceStats || {}; state.folderStats = folderStats || {};
        sampleRates(connections);
        const folders = config.folders || [];
        await Promise.all(folders.map(async (f) => {
          try {
            const s = await get('db/status?folder=' + q(f.id));
            state.folderStatus[f.id] = s;
            state.folderErrors[f.id] = s.pullErrors > 0
              ? ((await get('folder/errors?folder=' + q(f.id))).errors || []) : [];
          } catch (e) {
            state.folderStatus[f.id] = { state: 'unknown', error: e.message };
          }
        }));
        await Promise.all(remoteDevices().map(async (d) => {
          try { state.completion[d.deviceID] = await get('db/completion?device=' + q(d.deviceID)); }
          catch (e) { delete state.completion[d.deviceID]; }
        }));
        banner('');
        renderExposure();
        render();
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 403)) banner('Cannot reach syncd: ' + e.message);
      }
    })();
    try { await loading; } finally {
      loading = null;
      if (again) { again = false; load(); }
    }
  }

  function sampleRates(connections) {
    const now = Date.now();
    const prev = state.connections, dt = state.lastSample ? (now - state.lastSample) / 1000 : 0;
    state.rates = {};
    const rate = (cur, old) => (dt > 0 && old ? {
      in: (cur.inBytesTotal - old.inBytesTotal) / dt, out: (cur.outBytesTotal - old.outBytesTotal) / dt,
    } : { in: 0, out: 0 });
    if (prev) {
      state.rates.total = rate(connections.total, prev.total);
      for (const [id, c] of Object.entries(connections.connections || {})) {
        state.rates[id] = rate(c, (prev.connections || {})[id]);
      }
    }
    state.connections = connections;
    state.lastSample = now;
  }

  let refreshTimer = null;
  function scheduleLoad(delay) {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; load(); }, delay);
  }

  // The long poll: waits on the daemon, costs nothing while nothing happens.
  async function eventLoop() {
    let since = 0;
    try {
      const last = await get('events?limit=1');
      if (Array.isArray(last) && last.length) since = last[last.length - 1].id;
    } catch (e) { /* retried below */ }
    for (;;) {
      try {
        const evs = await get('events?since=' + since + '&timeout=60');
        if (Array.isArray(evs) && evs.length) {
          since = evs[evs.length - 1].id;
          scheduleLoad(250);
        }
      } catch (e) {
        // Without credentials the loop stops; logging in starts it again.
        if (e instanceof ApiError && e.status === 403) { started = false; return; }
        banner('Connection to syncd lost; retrying…');
        await new Promise((r) => setTimeout(r, 5000));
        scheduleLoad(0);
      }
    }
  }

  // Rates and uptime need a sample now and then; only while someone can see them.
  setInterval(async () => {
    if (document.visibilityState !== 'visible' || !state.config) return;
    try {
      const [connections, status] = await Promise.all([get('system/connections'), get('system/status')]);
      sampleRates(connections);
      state.status = status;
      renderDevices();
    } catch (e) { /* the event loop reports lost connections */ }
  }, 10000);

  // ---------- rendering ----------

  function props(rows) {
    const t = el('table', { class: 'props' });
    for (const [k, v, attrs] of rows) {
      if (v === undefined || v === null) continue;
      t.append(el('tr', null, el('th', null, k), el('td', attrs || null, v)));
    }
    return t;
  }

  // A collapsible panel that keeps its open/closed state across re-renders.
  function panel(key, title, badge, body) {
    const d = el('details', { class: 'panel', 'data-key': key },
      el('summary', null, el('span', { class: 'title', title }, title), badge),
      el('div', { class: 'body' }, ...body));
    if (state.open.has(key)) d.open = true;
    d.addEventListener('toggle', () => { if (d.open) state.open.add(key); else state.open.delete(key); });
    return d;
  }

  function badge(text, kind) { return el('span', { class: 'state ' + kind }, text); }

  function folderBadge(f, s) {
    if (f.paused) return badge('Paused', 'off');
    if (!s) return badge('Unknown', 'off');
    const need = needItems(s);
    switch (s.state) {
      case 'idle':
        if (s.error) return badge('Stopped', 'bad');
        if (s.pullErrors > 0) return badge('Failed items', 'bad');
        if (need > 0) return badge('Out of sync', 'warn');
        // As Syncthing's GUI: a receive-only folder with local changes shows "Local Additions".
        if (s.receiveOnlyTotalItems > 0) return badge('Local additions', 'warn');
        if ((f.devices || []).filter((d) => d.deviceID !== myID).length === 0) return badge('Unshared', 'warn');
        return badge('Up to date', 'ok');
      case 'scanning': case 'scan-waiting': return badge('Scanning', 'sync');
      case 'syncing': case 'sync-preparing': case 'sync-waiting':
        return badge('Syncing ' + pct(s) + '%', 'sync');
      case 'error': return badge('Error', 'bad');
      default: return badge(String(s.state || 'unknown'), 'off');
    }
  }

  function needItems(s) {
    return (s.needFiles || 0) + (s.needDirectories || 0) + (s.needSymlinks || 0) + (s.needDeletes || 0);
  }

  function pct(s) {
    const g = s.globalBytes || 0;
    if (g === 0) return needItems(s) > 0 ? 95 : 100;
    return Math.min(100, Math.floor(100 * (g - (s.needBytes || 0)) / g));
  }

  // Puts `panels` (or `empty` when there are none) into `box`, keeping every existing panel
  // whose text has not changed: an event that touches one folder does not rebuild the others,
  // so open panels, text selections and elements held by a test or screen reader survive.
  function reconcile(box, panels, empty) {
    if (!panels.length) { box.replaceChildren(empty); return; }
    const old = new Map();
    for (const c of Array.from(box.children)) if (c.dataset && c.dataset.key) old.set(c.dataset.key, c);
    const next = panels.map((p) => {
      const sig = p.textContent;
      const o = old.get(p.dataset.key);
      if (o && o.dataset.sig === sig) return o;
      p.dataset.sig = sig;
      return p;
    });
    const same = next.length === box.children.length && next.every((n, i) => box.children[i] === n);
    if (!same) box.replaceChildren(...next);
  }

  function renderFolders() {
    const box = $('folders');
    const panels = [];
    const folders = (state.config.folders || []).slice()
      .sort((a, b) => (a.label || a.id).localeCompare(b.label || b.id));
    for (const f of folders) {
      const s = state.folderStatus[f.id];
      const shared = (f.devices || []).filter((d) => d.deviceID !== myID).map((d) => deviceName(d.deviceID));
      const rows = [
        ['Folder ID', f.id, { class: 'mono', 'data-field': 'id' }],
        ['Folder path', f.path, { class: 'mono', 'data-field': 'path' }],
        ['State', s ? String(s.state) : 'unknown', { 'data-field': 'state' }],
      ];
      if (s && s.error) rows.push(['Error', s.error, { class: 'error' }]);
      if (s && s.watchError) rows.push(['Watcher', s.watchError, { class: 'error' }]);
      if (s && s.globalBytes !== undefined) {
        rows.push(['Completion', pct(s) + '%', { 'data-field': 'completion' }]);
        rows.push(['Global state', items(s, 'global') + ', ' + fmtBytes(s.globalBytes)]);
        rows.push(['Local state', items(s, 'local') + ', ' + fmtBytes(s.localBytes)]);
        const needText = needItems(s) + ' items, ' + fmtBytes(s.needBytes);
        rows.push(['Out of sync', needItems(s) > 0
          ? el('button', { type: 'button', class: 'count show-need', onclick: () => showNeed(f.id) }, needText)
          : needText, { 'data-field': 'need' }]);
        if (s.pullErrors > 0) {
          rows.push(['Failed items', el('button', { type: 'button', class: 'count show-failed', onclick: () => showFailed(f.id) },
            String(s.pullErrors)), { class: 'error', 'data-field': 'failed' }]);
        }
        rows.push(['Ignore patterns', s.ignorePatterns ? 'yes' : 'no']);
      }
      const fst = state.folderStats[f.id];
      if (fst) {
        rows.push(['Last scan', fmtTime(fst.lastScan), { 'data-field': 'last-scan' }]);
        const lf = fst.lastFile || {};
        rows.push(['Latest change', lf.filename ? (lf.deleted ? 'Deleted ' : 'Updated ') + lf.filename + ', ' + fmtTime(lf.at) : 'none', { 'data-field': 'latest-change' }]);
      }
      rows.push(['Folder type', folderTypeText(f.type), { 'data-field': 'type' }]);
      if (s && s.receiveOnlyTotalItems > 0) {
        rows.push(['Locally changed', s.receiveOnlyTotalItems + ' items, ' + fmtBytes(s.receiveOnlyChangedBytes || 0),
          { 'data-field': 'local-changes' }]);
      }
      rows.push(['Rescans', (f.rescanIntervalS ? fmtDuration(f.rescanIntervalS) : 'never') +
        (f.fsWatcherEnabled ? ', watcher on (' + f.fsWatcherDelayS + ' s delay)' : ', watcher off')]);
      rows.push(['File versioning', versioningText(f.versioning), { 'data-field': 'versioning' }]);
      rows.push(['Shared with', shared.length ? shared.join(', ') : 'nobody', { 'data-field': 'shared' }]);
      const body = [props(rows)];
      const errs = state.folderErrors[f.id] || [];
      if (errs.length) {
        body.push(el('ul', { class: 'errors' }, ...errs.slice(0, 50).map((e) => el('li', null, el('code', null, e.path), ': ', e.error))));
      }
      body.push(el('div', { class: 'buttons' },
        el('button', { type: 'button', class: 'pause-folder', onclick: () => pauseFolder(f.id, !f.paused) }, f.paused ? 'Resume' : 'Pause'),
        el('button', { type: 'button', onclick: () => rescan(f.id), disabled: !!f.paused }, 'Rescan'),
        el('button', { type: 'button', class: 'show-conflicts', onclick: () => openConflicts(f.id) }, 'Conflicts'),
        // Syncthing shows Override when a send-only folder is out of sync, Revert when a
        // receive-only folder has local changes.
        el('button', { type: 'button', class: 'override-folder danger', hidden: !(f.type === 'sendonly' && s && needItems(s) > 0),
          onclick: () => revertOverride(f.id, 'override') }, 'Override changes'),
        el('button', { type: 'button', class: 'revert-folder danger', hidden: !(f.type === 'receiveonly' && s && s.receiveOnlyTotalItems > 0),
          onclick: () => revertOverride(f.id, 'revert') }, 'Revert local changes'),
        el('button', { type: 'button', class: 'show-versions', hidden: !(f.versioning && f.versioning.type && f.versioning.type !== 'external'), onclick: () => openVersions(f.id) }, 'Versions'),
        el('button', { type: 'button', class: 'edit-folder', 'data-folder': f.id, onclick: () => openFolder(f.id) }, 'Edit')));
      const p = panel('folder:' + f.id, f.label || f.id, folderBadge(f, s), body);
      p.setAttribute('data-folder', f.id);
      panels.push(p);
    }
    reconcile(box, panels, el('p', { class: 'muted' }, 'No folders yet. Add one to start syncing.'));
  }

  function items(s, prefix) {
    return (s[prefix + 'Files'] || 0) + ' files, ' + (s[prefix + 'Directories'] || 0) + ' dirs';
  }

  function renderThisDevice() {
    const box = $('this-device');
    const st = state.status || {};
    const listeners = Object.keys(st.connectionServiceStatus || {});
    const total = state.rates.total || { in: 0, out: 0 };
    const me = (state.config.devices || []).find((d) => d.deviceID === myID);
    const name = me && me.name ? me.name : shortID(myID);
    $('top-name').textContent = name;
    document.title = name + ' · syncd';
    const rows = [
      ['Download rate', fmtRate(total.in)],
      ['Upload rate', fmtRate(total.out)],
      ['Listeners', listeners.length ? listeners.join(', ') : 'none', { class: 'mono' }],
      ['Uptime', fmtDuration(st.uptime)],
      ['Identification', shortID(myID), { class: 'mono', 'data-field': 'short-id' }],
      ['Version', state.version ? state.version.version : ''],
    ];
    const p = panel('this', name, badge(shortID(myID), 'off'), [props(rows),
      el('div', { class: 'buttons' },
        el('button', { type: 'button', id: 'edit-this-device', onclick: () => openDevice(myID) }, 'Edit'),
        el('button', { type: 'button', onclick: showID }, 'Show ID'))]);
    p.setAttribute('data-device', myID);
    reconcile(box, [p], null);
  }

  function renderDevices() {
    if (!state.config) return;
    renderThisDevice();
    const box = $('devices');
    const panels = [];
    const devices = remoteDevices().slice().sort((a, b) => deviceName(a.deviceID).localeCompare(deviceName(b.deviceID)));
    const conns = (state.connections && state.connections.connections) || {};
    for (const d of devices) {
      const c = conns[d.deviceID] || {};
      const comp = state.completion[d.deviceID];
      const r = state.rates[d.deviceID] || { in: 0, out: 0 };
      let b;
      if (d.paused) b = badge('Paused', 'off');
      else if (!c.connected) b = badge('Disconnected', 'off');
      else if (comp && comp.completion < 100) b = badge('Syncing ' + Math.floor(comp.completion) + '%', 'sync');
      else b = badge('Up to date', 'ok');
      const folders = (state.config.folders || [])
        .filter((f) => (f.devices || []).some((x) => x.deviceID === d.deviceID)).map((f) => f.label || f.id);
      const rows = [
        ['Connection', c.connected ? 'connected' : 'disconnected', { 'data-field': 'connected' }],
        ['Download rate', fmtRate(r.in)],
        ['Upload rate', fmtRate(r.out)],
        ['Address', c.connected ? c.address : (d.addresses || []).join(', '), { class: 'mono' }],
        ['Connection type', c.connected ? c.type : undefined],
        ['Client version', c.connected ? c.clientVersion : undefined],
        ['Completion', comp ? Math.floor(comp.completion) + '%' : undefined, { 'data-field': 'completion' }],
        ['Out of sync', comp && comp.needItems
          ? el('button', { type: 'button', class: 'count show-remote-need', onclick: () => showRemoteNeed(d.deviceID) },
            comp.needItems + ' items, ' + fmtBytes(comp.needBytes))
          : (comp ? '0 items' : undefined), { 'data-field': 'remote-need' }],
        ['Compression', d.compression],
        ['Identification', shortID(d.deviceID), { class: 'mono' }],
        ['Folders', folders.length ? folders.join(', ') : 'none'],
      ];
      const dst = state.deviceStats[d.deviceID];
      if (!c.connected && dst) {
        rows.push(['Last seen', String(dst.lastSeen).startsWith('1970-') ? 'never' : fmtTime(dst.lastSeen), { 'data-field': 'last-seen' }]);
      }
      const title = d.name || shortID(d.deviceID);
      const p = panel('device:' + d.deviceID, title, b, [props(rows),
        el('div', { class: 'buttons' },
          el('button', { type: 'button', class: 'pause-device', onclick: () => pauseDevice(d.deviceID, !d.paused) }, d.paused ? 'Resume' : 'Pause'),
          el('button', { type: 'button', class: 'edit-device', onclick: () => openDevice(d.deviceID) }, 'Edit'))]);
      p.setAttribute('data-device', d.deviceID);
      panels.push(p);
    }
    reconcile(box, panels, el('p', { class: 'muted' }, 'No remote devices yet. Add one with its device ID.'));
  }

  // Errors the daemon wants a person to see (/rest/system/error), until cleared.
  function renderNotices(r) {
    const list = (r && r.errors) || [];
    $('notices').hidden = list.length === 0;
    $('notices-list').replaceChildren(...list.slice(-20).map((e) =>
      el('li', null, fmtTime(e.when) + ': ' + e.message)));
  }

  $('notices-clear').addEventListener('click', async () => {
    try { await api('POST', 'system/error/clear'); renderNotices(null); }
    catch (e) { banner('Could not clear: ' + e.message); }
  });

  function render() {
    if (!state.config) return;
    renderPending();
    renderFolders();
    renderDevices();
  }

  // ---------- devices and folders asking to join ----------

  function ask(text, buttons) {
    return el('div', { class: 'ask', role: 'status' }, el('span', { class: 'text' }, text),
      ...buttons.map(([label, action, cls]) => el('button', { type: 'button', class: cls, onclick: action }, label)));
  }

  function renderPending() {
    const rows = [];
    for (const [id, d] of Object.entries(state.pendingDevices || {})) {
      rows.push(ask('Device "' + (d.name || '') + '" (' + id + ' at ' + (d.address || '?') + ') wants to connect. Add it?', [
        ['Add device', () => openDevice(null, { id, name: d.name || '' }), 'primary'],
        ['Ignore', () => ignoreDevice(id, d)],
        ['Dismiss', () => dismiss('cluster/pending/devices?device=' + q(id))],
      ]));
    }
    for (const [folder, f] of Object.entries(state.pendingFolders || {})) {
      for (const [dev, o] of Object.entries(f.offeredBy || {})) {
        const exists = (state.config.folders || []).some((x) => x.id === folder);
        rows.push(ask('"' + deviceName(dev) + '" wants to share folder "' + (o.label || folder) + '" (' + folder + ').' +
          (exists ? ' You have this folder: share it with the device?' : ' Add it?'), [
          exists ? ['Share', () => shareFolder(folder, dev), 'primary']
            : ['Add', () => openFolder(null, { id: folder, label: o.label || folder, device: dev }), 'primary'],
          ['Ignore', () => ignoreFolder(folder, o, dev)],
          ['Dismiss', () => dismiss('cluster/pending/folders?folder=' + q(folder) + '&device=' + q(dev))],
        ]));
      }
    }
    $('pending').replaceChildren(...rows);
    $('pending').hidden = rows.length === 0;
  }

  async function dismiss(path) {
    try { await api('DELETE', path); await load(); }
    catch (e) { banner('Could not dismiss: ' + e.message); }
  }

  // As Syncthing's GUI: ignoring a device is remoteIgnoredDevices in the whole config.
  async function ignoreDevice(id, d) {
    try {
      const config = await get('config');
      config.remoteIgnoredDevices = (config.remoteIgnoredDevices || []).filter((x) => x.deviceID !== id);
      config.remoteIgnoredDevices.push({ deviceID: id, name: d.name || '', address: d.address || '', time: new Date().toISOString() });
      await api('PUT', 'config', config);
      await load();
    } catch (e) { banner('Could not ignore the device: ' + e.message); }
  }

  async function ignoreFolder(folder, o, dev) {
    try {
      const d = await get('config/devices/' + q(dev));
      const list = (d.ignoredFolders || []).filter((x) => x.id !== folder);
      list.push({ id: folder, label: o.label || '', time: new Date().toISOString() });
      await api('PATCH', 'config/devices/' + q(dev), { ignoredFolders: list });
      await load();
    } catch (e) { banner('Could not ignore the folder: ' + e.message); }
  }

  async function shareFolder(folder, dev) {
    try {
      const f = (state.config.folders || []).find((x) => x.id === folder);
      const devices = (f.devices || []).map((x) => ({ deviceID: x.deviceID }));
      if (!devices.some((x) => x.deviceID === dev)) devices.push({ deviceID: dev });
      await api('PATCH', 'config/folders/' + q(folder), { devices });
      await load();
    } catch (e) { banner('Could not share the folder: ' + e.message); }
  }

  async function pauseFolder(id, paused) {
    try { await api('PATCH', 'config/folders/' + q(id), { paused }); await load(); }
    catch (e) { banner((paused ? 'Pausing' : 'Resuming') + ' failed: ' + e.message); }
  }

  async function pauseDevice(id, paused) {
    try { await api('POST', 'system/' + (paused ? 'pause' : 'resume') + '?device=' + q(id)); await load(); }
    catch (e) { banner((paused ? 'Pausing' : 'Resuming') + ' failed: ' + e.message); }
  }

  function folderTypeText(t) {
    return { sendonly: 'Send only', receiveonly: 'Receive only' }[t] || 'Send & receive';
  }

  async function revertOverride(id, op) {
    const what = op === 'override'
      ? 'Make this device\'s version of every out-of-sync item win on all devices of folder ' + id + '?'
      : 'Drop the local changes of folder ' + id + '? Files that exist only here are removed (to the versions when versioning is on).';
    if (!(await confirmRemove(what, op === 'override' ? 'Override' : 'Revert'))) return;
    try { await api('POST', 'db/' + op + '?folder=' + q(id)); } catch (e) { banner((op === 'override' ? 'Override' : 'Revert') + ' failed: ' + e.message); }
  }

  async function rescan(id) {
    try { await api('POST', 'db/scan?folder=' + q(id)); } catch (e) { banner('Rescan failed: ' + e.message); }
  }

  // ---------- dialogs ----------

  function openDialog(id) { const d = $(id); if (!d.open) d.showModal(); }
  function closeDialog(id) { const d = $(id); if (d.open) d.close(); }

  for (const b of document.querySelectorAll('[data-close]')) {
    b.addEventListener('click', () => closeDialog(b.getAttribute('data-close')));
  }

  function confirmRemove(text, action) {
    return new Promise((resolve) => {
      $('dlg-confirm-text').textContent = text;
      $('confirm-yes').textContent = action || 'Remove';
      const yes = $('confirm-yes'), dlg = $('dlg-confirm');
      const done = (v) => { yes.removeEventListener('click', onYes); dlg.removeEventListener('close', onClose); resolve(v); };
      const onYes = () => { done(true); closeDialog('dlg-confirm'); };
      const onClose = () => done(false);
      yes.addEventListener('click', onYes);
      dlg.addEventListener('close', onClose);
      openDialog('dlg-confirm');
    });
  }

  function showID() {
    $('idqr-id').textContent = myID;
    $('idqr-copied').textContent = '';
    $('idqr-img').src = 'qr/?text=' + q(myID);
    openDialog('dlg-id');
  }

  $('idqr-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(myID);
      $('idqr-copied').textContent = 'Copied.';
    } catch (e) {
      // No clipboard permission (plain http from another host): select the text instead.
      const range = document.createRange();
      range.selectNodeContents($('idqr-id'));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      $('idqr-copied').textContent = 'Selected; press Ctrl+C (⌘C) to copy.';
    }
  });

  // Device dialog
  let editingDevice = null, deviceIdValid = false, validateTimer = null, validateSeq = 0;

  function checks(box, items, checked) {
    clear(box);
    if (!items.length) box.append(el('p', { class: 'muted' }, 'None yet.'));
    for (const it of items) {
      box.append(el('label', null,
        el('input', { type: 'checkbox', value: it.value, checked: checked.has(it.value) }), it.label));
    }
  }

  function checkedValues(box) {
    return new Set(Array.from(box.querySelectorAll('input[type=checkbox]')).filter((c) => c.checked).map((c) => c.value));
  }

  function openDevice(id, prefill) {
    editingDevice = id;
    const self = id === myID;
    const d = id ? (state.config.devices || []).find((x) => x.deviceID === id) : null;
    $('dlg-device-title').textContent = self ? 'This device' : d ? 'Edit device' : 'Add remote device';
    // This device has only a name to edit.
    for (const n of document.querySelectorAll('#form-device .remote-only')) n.hidden = self;
    $('device-id').value = id || '';
    $('device-id').readOnly = !!id;
    $('device-name').value = d ? d.name : '';
    $('device-addresses').value = d ? (d.addresses || []).join(', ') : 'dynamic';
    $('device-compression').value = d ? d.compression : 'metadata';
    $('device-introducer').checked = !!(d && d.introducer);
    $('device-auto-accept').checked = !!(d && d.autoAcceptFolders);
    $('device-remove').hidden = !d || self;
    $('device-error').textContent = '';
    const sharedNow = new Set((state.config.folders || [])
      .filter((f) => id && (f.devices || []).some((x) => x.deviceID === id)).map((f) => f.id));
    checks($('device-folders'), (state.config.folders || []).map((f) => ({ value: f.id, label: (f.label || f.id) + ' (' + f.id + ')' })), sharedNow);
    deviceIdValid = !!id;
    setIdMessage(id ? '' : 'Paste the ID shown by "Show ID" on the other device.', '');
    $('device-save').disabled = !deviceIdValid;
    openDialog('dlg-device');
    (id ? $('device-name') : $('device-id')).focus();
    if (prefill) {
      // A device asking to join: its ID (checked as if typed) and the name it announced.
      $('device-id').value = prefill.id;
      $('device-name').value = prefill.name;
      $('device-id').dispatchEvent(new Event('input'));
      $('device-name').focus();
    }
  }

  function setIdMessage(text, kind) {
    const m = $('device-id-msg');
    m.textContent = text;
    m.className = 'hint' + (kind ? ' ' + kind : '');
    $('device-id').classList.toggle('invalid', kind === 'bad');
  }

  $('device-id').addEventListener('input', () => {
    if (editingDevice) return;
    deviceIdValid = false;
    $('device-save').disabled = true;
    clearTimeout(validateTimer);
    const value = $('device-id').value.trim();
    if (!value) { setIdMessage('The device ID is required.', 'bad'); return; }
    validateTimer = setTimeout(async () => {
      const seq = ++validateSeq;
      try {
        const r = await get('svc/deviceid?id=' + q(value));
        if (seq !== validateSeq) return;
        if (r && r.id) {
          if (r.id === myID) { setIdMessage('That is this device\'s own ID.', 'bad'); return; }
          if (remoteDevices().some((d) => d.deviceID === r.id)) { setIdMessage('This device is already added.', 'bad'); return; }
          deviceIdValid = true;
          $('device-id').dataset.normalized = r.id;
          setIdMessage('Valid device ID.', 'ok');
          $('device-save').disabled = false;
        } else {
          setIdMessage('Invalid device ID: ' + (r && r.error ? r.error : 'unknown error'), 'bad');
        }
      } catch (e) { setIdMessage('Cannot check the ID: ' + e.message, 'bad'); }
    }, 150);
  });

  $('form-device').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!deviceIdValid) return;
    const id = editingDevice || $('device-id').dataset.normalized;
    const addresses = $('device-addresses').value.split(',').map((s) => s.trim()).filter(Boolean);
    const body = {
      deviceID: id, name: $('device-name').value.trim(),
      addresses: addresses.length ? addresses : ['dynamic'], compression: $('device-compression').value,
      introducer: $('device-introducer').checked, autoAcceptFolders: $('device-auto-accept').checked,
    };
    $('device-save').disabled = true;
    try {
      if (id === myID) {
        // Renaming this device: Syncthing's PUT of our own entry.
        await api('PUT', 'config/devices/' + q(id), { deviceID: id, name: body.name });
        closeDialog('dlg-device');
        await load();
        return;
      }
      if (editingDevice) await api('PATCH', 'config/devices/' + q(id), body);
      else await api('POST', 'config/devices', body);
      const want = checkedValues($('device-folders'));
      for (const f of state.config.folders || []) {
        const has = (f.devices || []).some((x) => x.deviceID === id);
        if (has === want.has(f.id)) continue;
        const devices = (f.devices || []).filter((x) => x.deviceID !== id).map((x) => ({ deviceID: x.deviceID }));
        if (!has) devices.push({ deviceID: id });
        await api('PATCH', 'config/folders/' + q(f.id), { devices });
      }
      closeDialog('dlg-device');
      await load();
    } catch (e) {
      $('device-error').textContent = 'Could not save: ' + e.message;
    } finally { $('device-save').disabled = !deviceIdValid; }
  });

  $('device-remove').addEventListener('click', async () => {
    const id = editingDevice;
    if (!id || !(await confirmRemove('Remove device ' + deviceName(id) + ' (' + shortID(id) + ')? Folders stop syncing with it; no files are deleted.'))) return;
    try {
      await api('DELETE', 'config/devices/' + q(id));
      closeDialog('dlg-device');
      await load();
    } catch (e) { $('device-error').textContent = 'Could not remove: ' + e.message; }
  });

  // Folder dialog
  let editingFolder = null, ignoresLoaded = '';

  async function openFolder(id, prefill) {
    editingFolder = id;
    const f = id ? (state.config.folders || []).find((x) => x.id === id) : null;
    // A new folder starts from the daemon's defaults (watcher delay, rescan interval).
    let def = null;
    if (!f) { try { def = await get('config/defaults/folder'); } catch (e) { /* built-in values */ } }
    const base = f || def || { fsWatcherEnabled: true, fsWatcherDelayS: 0.1, rescanIntervalS: 3600 };
    $('dlg-folder-title').textContent = f ? 'Edit folder' : 'Add folder';
    $('folder-label').value = f ? f.label : '';
    $('folder-id').value = f ? f.id : '';
    $('folder-id').readOnly = !!f;
    $('folder-path').value = f ? f.path : '';
    $('folder-watch').checked = base.fsWatcherEnabled;
    $('folder-watch-delay').value = base.fsWatcherDelayS;
    $('folder-rescan').value = base.rescanIntervalS;
    $('folder-type').value = base.type || 'sendreceive';
    const v = base.versioning || {};
    const params = v.params || {};
    $('folder-versioning').value = v.type || '';
    $('folder-v-keep').value = params.keep || 5;
    $('folder-v-cleanout').value = params.cleanoutDays || 0;
    $('folder-v-maxage').value = params.maxAge ? Math.round(Number(params.maxAge) / 86400) : 365;
    $('folder-v-command').value = params.command || '';
    showVersioningFields();
    $('folder-ignores').value = '';
    $('folder-ignores-msg').textContent = '';
    ignoresLoaded = '';
    $('folder-remove').hidden = !f;
    $('folder-error').textContent = '';
    const sharedNow = new Set(f ? (f.devices || []).map((d) => d.deviceID) : []);
    if (prefill) {
      // A folder a device offers: its ID and label, shared with that device.
      $('folder-id').value = prefill.id;
      $('folder-label').value = prefill.label;
      if (def && def.path) $('folder-path').value = def.path.replace(/\/+$/, '') + '/' + prefill.label;
      sharedNow.add(prefill.device);
    }
    checks($('folder-devices'), remoteDevices().map((d) => ({ value: d.deviceID, label: (d.name || shortID(d.deviceID)) + ' (' + shortID(d.deviceID) + ')' })), sharedNow);
    openDialog('dlg-folder');
    $('folder-label').focus();
    if (f) {
      try {
        const ig = await get('db/ignores?folder=' + q(f.id));
        ignoresLoaded = (ig.ignore || []).join('\n');
        $('folder-ignores').value = ignoresLoaded;
        if (ig.error) $('folder-ignores-msg').textContent = 'Current patterns have an error: ' + ig.error;
      } catch (e) { $('folder-ignores-msg').textContent = 'Cannot load ignore patterns: ' + e.message; }
    } else {
      try {
        const r = await get('svc/random/string?length=10');
        const s = String(r.random).toLowerCase();
        if (!$('folder-id').value) $('folder-id').value = s.slice(0, 5) + '-' + s.slice(5);
      } catch (e) { /* the user types one */ }
    }
  }

  // Path completion from the daemon's file system (/rest/system/browse).
  let browseTimer = null, browseSeq = 0;
  $('folder-path').addEventListener('input', () => {
    clearTimeout(browseTimer);
    const current = $('folder-path').value;
    browseTimer = setTimeout(async () => {
      const seq = ++browseSeq;
      try {
        const list = await get('system/browse?current=' + q(current));
        if (seq !== browseSeq) return;
        const dl = $('folder-path-list');
        clear(dl);
        for (const p of (list || []).slice(0, 50)) dl.append(el('option', { value: p }));
      } catch (e) { /* completion is a convenience */ }
    }, 200);
  });

  $('form-folder').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = $('folder-id').value.trim();
    const path = $('folder-path').value.trim();
    if (!id) { $('folder-error').textContent = 'The folder ID is required.'; return; }
    if (!path) { $('folder-error').textContent = 'The folder path is required.'; return; }
    if (!editingFolder && (state.config.folders || []).some((f) => f.id === id)) {
      $('folder-error').textContent = 'A folder with this ID already exists.'; return;
    }
    const body = {
      id, label: $('folder-label').value.trim() || id, path,
      devices: Array.from(checkedValues($('folder-devices'))).map((d) => ({ deviceID: d })),
      fsWatcherEnabled: $('folder-watch').checked,
      fsWatcherDelayS: Number($('folder-watch-delay').value) || 0.1,
      rescanIntervalS: Math.max(0, Math.floor(Number($('folder-rescan').value) || 0)),
      type: $('folder-type').value,
      versioning: versioningBody(),
    };
    if (body.versioning.type === 'external' && !body.versioning.params.command) {
      $('folder-error').textContent = 'External versioning needs a command.'; return;
    }
    const ignores = $('folder-ignores').value.replace(/\r\n/g, '\n').replace(/\n+$/, '');
    const ignoresChanged = ignores !== ignoresLoaded;
    $('folder-save').disabled = true;
    try {
      if (editingFolder) {
        await api('PATCH', 'config/folders/' + q(id), body);
        if (ignoresChanged) await api('POST', 'db/ignores?folder=' + q(id), { ignore: ignores ? ignores.split('\n') : [] });
      } else if (ignores) {
        // As Syncthing: create paused, set the patterns, then start, so nothing the
        // patterns exclude is ever announced.
        await api('POST', 'config/folders', Object.assign({}, body, { paused: true }));
        await api('POST', 'db/ignores?folder=' + q(id), { ignore: ignores.split('\n') });
        await api('PATCH', 'config/folders/' + q(id), { paused: false });
      } else {
        await api('POST', 'config/folders', body);
      }
      closeDialog('dlg-folder');
      await load();
    } catch (e) {
      $('folder-error').textContent = 'Could not save: ' + e.message;
    } finally { $('folder-save').disabled = false; }
  });

  $('folder-remove').addEventListener('click', async () => {
    const id = editingFolder;
    if (!id || !(await confirmRemove('Stop syncing folder ' + id + '? The files on disk stay where they are.'))) return;
    try {
      await api('DELETE', 'config/folders/' + q(id));
      closeDialog('dlg-folder');
      await load();
    } catch (e) { $('folder-error').textContent = 'Could not remove: ' + e.message; }
  });

  // File versioning in the folder dialog, with Syncthing's GUI mapping of the params
  // (all strings; staggered's maximum age is edited in days and kept in seconds).
  function versioningText(v) {
    const t = v && v.type;
    if (!t) return 'off';
    const p = v.params || {};
    const names = { trashcan: 'Trash can', simple: 'Simple', staggered: 'Staggered', external: 'External' };
    let extra = '';
    if (t === 'simple') extra = ', keep ' + (p.keep || 5);
    if ((t === 'simple' || t === 'trashcan') && Number(p.cleanoutDays) > 0) extra += ', clean out after ' + p.cleanoutDays + ' days';
    if (t === 'staggered') extra = ', maximum age ' + (p.maxAge ? Math.round(Number(p.maxAge) / 86400) + ' days' : '365 days');
    return (names[t] || t) + extra;
  }
  function showVersioningFields() {
    const t = $('folder-versioning').value;
    $('folder-v-keep-row').hidden = t !== 'simple';
    $('folder-v-cleanout-row').hidden = !(t === 'simple' || t === 'trashcan');
    $('folder-v-maxage-row').hidden = t !== 'staggered';
    $('folder-v-command-row').hidden = t !== 'external';
  }
  $('folder-versioning').addEventListener('change', showVersioningFields);
  function versioningBody() {
    const type = $('folder-versioning').value;
    const params = {};
    const n = (id) => String(Math.max(0, Math.floor(Number($(id).value) || 0)));
    if (type === 'simple') { params.keep = String(Math.max(1, Number(n('folder-v-keep')))); params.cleanoutDays = n('folder-v-cleanout'); }
    if (type === 'trashcan') params.cleanoutDays = n('folder-v-cleanout');
    if (type === 'staggered') params.maxAge = String(Number(n('folder-v-maxage')) * 86400);
    if (type === 'external') params.command = $('folder-v-command').value.trim();
    const f = editingFolder ? (state.config.folders || []).find((x) => x.id === editingFolder) : null;
    const old = (f && f.versioning) || {};
    return { type, params, cleanupIntervalS: old.cleanupIntervalS === undefined ? 3600 : old.cleanupIntervalS,
      fsPath: old.fsPath || '', fsType: old.fsType || 'basic' };
  }

  // Versions browser (/rest/folder/versions): every kept version, newest first, with Restore.
  let versionsFolder = null;
  async function openVersions(folder) {
    versionsFolder = folder;
    const f = (state.config.folders || []).find((x) => x.id === folder);
    $('dlg-versions-title').textContent = 'Versions in ' + (f ? f.label || f.id : folder);
    $('versions-error').textContent = '';
    openDialog('dlg-versions');
    await renderVersions();
  }
  async function renderVersions() {
    const folder = versionsFolder, box = $('versions-list');
    let map;
    try { map = await get('folder/versions?folder=' + q(folder)); }
    catch (e) { $('versions-error').textContent = 'Cannot list versions: ' + e.message; return; }
    const items = Object.keys(map || {}).sort().map((path) => el('div', { class: 'version', 'data-path': path },
      el('h4', null, path),
      el('ul', null, ...(map[path] || []).map((v) => el('li', null,
        fmtTime(v.versionTime) + ' · ' + fmtBytes(v.size) + ' · modified ' + fmtTime(v.modTime) + ' ',
        el('button', { type: 'button', class: 'restore-version', onclick: () => restoreVersion(path, v.versionTime) }, 'Restore'))))));
    if (versionsFolder !== folder) return;
    box.replaceChildren(...(items.length ? items : [el('p', { class: 'muted', id: 'no-versions' }, 'No versions kept in this folder.')]));
  }
  async function restoreVersion(path, versionTime) {
    $('versions-error').textContent = '';
    try {
      const errs = await api('POST', 'folder/versions?folder=' + q(versionsFolder), { [path]: versionTime });
      const e = errs && errs[path];
      if (e) { $('versions-error').textContent = 'Could not restore ' + path + ': ' + e; return; }
      await renderVersions();
    } catch (e) { $('versions-error').textContent = 'Could not restore: ' + e.message; }
  }

  // Conflicts view: every .sync-conflict-* copy with the file it belongs to, side by side.
  let conflictsFolder = null;

  // Which lines of a and b are not part of their longest common subsequence (small inputs
  // only; larger ones are shown without marks).
  function changedLines(a, b) {
    const n = a.length, m = b.length;
    const ca = new Array(n).fill(true), cb = new Array(m).fill(true);
    if (n * m > 4000000) return [ca.fill(false), cb.fill(false)];
    const t = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        t[i][j] = a[i] === b[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
      }
    }
    let i = 0, j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { ca[i] = false; cb[j] = false; i++; j++; }
      else if (t[i + 1][j] >= t[i][j + 1]) i++;
      else j++;
    }
    return [ca, cb];
  }

  function textBox(lines, changed) {
    const box = el('div', { class: 'text' });
    lines.forEach((line, i) => box.append(el('div', { class: changed[i] ? 'chg' : null }, line === '' ? ' ' : line)));
    return box;
  }

  async function versionText(folder, path) {
    try { return await get('syncd/conflicts/file?folder=' + q(folder) + '&path=' + q(path)); }
    catch (e) { return { exists: true, text: null, error: e.message }; }
  }

  function describe(v) {
    if (v.error) return 'Cannot read: ' + v.error;
    if (!v.exists) return '(the file does not exist)';
    if (v.tooLarge) return '(too large to show)';
    if (v.binary) return '(not text)';
    return null;
  }

  async function openConflicts(folder) {
    conflictsFolder = folder;
    const f = (state.config.folders || []).find((x) => x.id === folder);
    $('dlg-conflicts-title').textContent = 'Conflicts in ' + (f ? f.label || f.id : folder);
    $('conflicts-error').textContent = '';
    openDialog('dlg-conflicts');
    await renderConflicts();
  }

  async function renderConflicts() {
    const folder = conflictsFolder, box = $('conflicts-list');
    let list;
    try { list = (await get('syncd/conflicts?folder=' + q(folder))).conflicts || []; }
    catch (e) { $('conflicts-error').textContent = 'Cannot list conflicts: ' + e.message; return; }
    const items = [];
    for (const c of list) {
      const [copy, orig] = await Promise.all([versionText(folder, c.path), versionText(folder, c.original)]);
      const la = copy.text === null || copy.text === undefined ? null : copy.text.split('\n');
      const lb = orig.text === null || orig.text === undefined ? null : orig.text.split('\n');
      const [ca, cb] = la && lb ? changedLines(la, lb) : [[], []];
      const who = c.shortID ? devicesByShort(c.shortID) : 'unknown device';
      const side = (title, meta, lines, changed, v, keep, label) => el('div', { class: 'side' },
        el('strong', null, title),
        el('span', { class: 'meta' }, meta),
        lines ? textBox(lines, changed) : el('div', { class: 'text' }, describe(v) || ''),
        el('button', { type: 'button', class: 'keep-' + keep, onclick: () => resolveConflict(c.path, keep) }, label));
      items.push(el('div', { class: 'conflict', 'data-conflict': c.path },
        el('h4', null, c.original),
        el('div', { class: 'sides' },
          side('Conflict copy', c.path + ' · ' + fmtBytes(c.size) + ' · modified ' + fmtTime(c.modified) + ' · set aside when the version of ' + who + ' won',
            la, ca, copy, 'conflict', 'Keep this version'),
          side('Current file', c.originalExists ? fmtBytes(c.originalSize) + ' · modified ' + fmtTime(c.originalModified) : 'missing',
            lb, cb, orig, 'original', 'Keep this version'))));
    }
    if (conflictsFolder !== folder) return;
    box.replaceChildren(...(items.length ? items : [el('p', { class: 'muted', id: 'no-conflicts' }, 'No conflicts in this folder.')]));
  }

  function devicesByShort(short) {
    const d = (state.config.devices || []).find((x) => x.deviceID.startsWith(short));
    if (short === shortID(myID)) return 'this device';
    return d && d.name ? d.name + ' (' + short + ')' : short;
  }

  async function resolveConflict(path, keep) {
    $('conflicts-error').textContent = '';
    try {
      await api('POST', 'syncd/conflicts/resolve?folder=' + q(conflictsFolder), { conflict: path, keep });
      await renderConflicts();
    } catch (e) { $('conflicts-error').textContent = 'Could not resolve: ' + e.message; }
  }

  // The daemon's recent log lines (/rest/system/log), newest last.
  async function showLogs() {
    openDialog('dlg-logs');
    const box = $('logs-list');
    try {
      const r = await get('system/log');
      const lines = (r && r.messages) || [];
      box.replaceChildren(...(lines.length ? lines.map((l) => el('div', { class: l.level >= 3 ? 'warn' : null }, l.message))
        : [el('span', { class: 'muted' }, 'No log lines yet.')]));
      box.scrollTop = box.scrollHeight;
    } catch (e) { box.replaceChildren(el('span', { class: 'error' }, 'Cannot read the log: ' + e.message)); }
  }

  // ---------- lists: recent changes, out of sync, failed items ----------

  function folderLabel(id) {
    const f = (state.config && state.config.folders || []).find((x) => x.id === id);
    return f ? f.label || f.id : String(id);
  }

  // Recent changes (/rest/events/disk), newest first. Paths and names are a peer's or a
  // file's choice: they go in as text only.
  async function showChanges() {
    openDialog('dlg-changes');
    $('changes-error').textContent = '';
    let evs;
    try { evs = await get('events/disk?limit=25&timeout=0'); }
    catch (e) { $('changes-error').textContent = 'Cannot read the changes: ' + e.message; return; }
    const rows = (Array.isArray(evs) ? evs : []).slice().reverse().map((ev) => {
      const d = ev.data || {};
      const who = ev.type === 'RemoteChangeDetected' && d.modifiedBy ? devicesByShort(String(d.modifiedBy)) : 'this device';
      return el('tr', { class: 'change' },
        el('td', null, fmtTime(ev.time)), el('td', null, who), el('td', null, String(d.action || '')),
        el('td', null, String(d.type || '')), el('td', null, folderLabel(d.folder || d.folderID)),
        el('td', { class: 'mono path' }, String(d.path || '')));
    });
    $('changes-list').replaceChildren(...rows);
    $('changes-empty').hidden = rows.length > 0;
  }

  function showItems(title, note, columns, fetchRows) {
    $('dlg-items-title').textContent = title;
    $('items-note').textContent = note;
    $('items-error').textContent = '';
    $('items-head').replaceChildren(el('tr', null, ...columns.map((c) => el('th', null, c))));
    $('items-list').replaceChildren();
    $('items-empty').hidden = true;
    openDialog('dlg-items');
    fetchRows().then((rows) => {
      $('items-list').replaceChildren(...rows.map((cells) => el('tr', { class: 'item' },
        ...cells.map((c, i) => el('td', { class: i === 0 ? 'mono path' : null }, c)))));
      $('items-empty').hidden = rows.length > 0;
    }).catch((e) => { $('items-error').textContent = 'Cannot list: ' + e.message; });
  }

  const PAGE = 500;

  function fileCells(f) {
    return [String(f.name || ''), f.type === 'FILE_INFO_TYPE_DIRECTORY' ? 'directory' : (f.deleted ? 'deleted' : fmtBytes(f.size)),
      fmtTime(f.modified)];
  }

  function showNeed(folder) {
    showItems('Out of sync items in ' + folderLabel(folder), 'What this device still needs from the others (first ' + PAGE + ').',
      ['Path', 'Size', 'Modified'], async () => {
        const r = await get('db/need?folder=' + q(folder) + '&page=1&perpage=' + PAGE);
        return [].concat(r.progress || [], r.queued || [], r.rest || []).map(fileCells);
      });
  }

  function showFailed(folder) {
    showItems('Failed items in ' + folderLabel(folder), 'Items this device could not sync, with the reason.',
      ['Path', 'Error'], async () => {
        const r = await get('folder/errors?folder=' + q(folder) + '&page=1&perpage=' + PAGE);
        return (r.errors || []).map((e) => [String(e.path || ''), String(e.error || '')]);
      });
  }

  function showRemoteNeed(device) {
    showItems('Out of sync items of ' + deviceName(device), 'What the device still needs from this one, per shared folder (first ' + PAGE + ' of each).',
      ['Path', 'Size', 'Modified', 'Folder'], async () => {
        const folders = (state.config.folders || []).filter((f) => (f.devices || []).some((x) => x.deviceID === device));
        const lists = await Promise.all(folders.map(async (f) => {
          const r = await get('db/remoteneed?folder=' + q(f.id) + '&device=' + q(device) + '&page=1&perpage=' + PAGE);
          return (r.files || []).map((x) => fileCells(x).concat([f.label || f.id]));
        }));
        return [].concat(...lists);
      });
  }

  // ---------- settings ----------

  function openSettings() {
    if (!state.config) return;
    const gui = state.config.gui || {};
    $('gui-address').value = gui.address || '';
    $('gui-user').value = gui.user || '';
    $('gui-password').value = '';
    $('gui-password-hint').textContent = gui.password ? 'A password is set; leave empty to keep it.' : 'No password set.';
    $('gui-tls').checked = !!gui.useTLS;
    $('settings-error').textContent = '';
    $('settings-msg').textContent = '';
    openDialog('dlg-settings');
  }

  async function saveGui(change, done) {
    $('settings-error').textContent = '';
    try {
      await api('PUT', 'config/gui', change);
      // From now on this page's requests need the login it has not made yet.
      if (change.password) { $('settings-msg').textContent = done; banner(done); return; }
      const rr = await get('config/restart-required');
      await load();
      $('settings-msg').textContent = done + (rr && rr.requiresRestart ? ' Restart syncd to apply the address or HTTPS change.' : '');
    } catch (e) { $('settings-error').textContent = 'Could not save: ' + e.message; }
  }

  $('form-settings').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const change = { address: $('gui-address').value.trim(), user: $('gui-user').value.trim(), useTLS: $('gui-tls').checked };
    const pw = $('gui-password').value;
    if (pw !== '') {
      if (!change.user) { $('settings-error').textContent = 'A password needs a user name.'; return; }
      change.password = pw;
    }
    await saveGui(change, pw !== '' ? 'Saved. The GUI now asks for this login; reload the page to log in.' : 'Saved.');
    $('gui-password').value = '';
  });

  $('gui-remove-login').addEventListener('click', () => saveGui({ user: '', password: '' }, 'Login removed.'));

  async function restart() {
    try {
      await api('POST', 'system/restart');
      banner('Restarting…');
      scheduleLoad(2000);
    } catch (e) { banner('Restart failed: ' + e.message); }
  }

  // ---------- wiring ----------

  $('btn-show-id').addEventListener('click', showID);
  $('btn-logs').addEventListener('click', showLogs);
  $('btn-changes').addEventListener('click', showChanges);
  $('changes-refresh').addEventListener('click', showChanges);
  $('btn-settings').addEventListener('click', openSettings);
  $('exposure-settings').addEventListener('click', openSettings);
  $('btn-restart').addEventListener('click', restart);
  $('logs-refresh').addEventListener('click', showLogs);
  $('btn-add-device').addEventListener('click', () => { if (state.config) openDevice(null); });
  $('btn-add-folder').addEventListener('click', () => { if (state.config) openFolder(null); });

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('login-key').value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $('login').hidden = true;
    $('main').hidden = false;
    start();
  });

  let started = false;
  async function start() {
    // The daemon records changes on disk from the first request for them on (Recent changes).
    get('events/disk?limit=1&timeout=0').catch(() => {});
    await load();
    if (state.config && !started) { started = true; eventLoop(); }
  }

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') scheduleLoad(0);
  });

  start();
})();
