/* ui.js: the web UI of `dagrun serve` (README "The web UI"), a page over
   the REST API and the event stream (docs/api.md), served from the binary.

   Views, by the URL's fragment:
     #/                       the workflows: last status, a sparkline of
                              recent durations, next scheduled times, start
     #/workflow/NAME[?start=1] one workflow: validation, variables, start
                              (start=1: start it at once), graph, runs, p50/p95
     #/run/ID                 one run: status, cancel / rerun failed /
                              resume, the graph coloured live, the report's
                              timeline and task details redrawn as it goes,
                              the log lines following
     #/run/ID/task/TASK       one task of a run: attempts, logs, history

   Rules: text from the server reaches the page through textContent and
   DOM setters only (never innerHTML); the SVG graphs are parsed as XML by
   DOMParser and imported (the page's Content-Security-Policy runs no
   script but this file and report.js). Live updates come from the event
   stream, read with fetch() so that the token travels in the
   Authorization header, never in a URL; nothing polls. The token, asked
   for when the API answers 401, is kept in sessionStorage (this tab). */
(function () {
  'use strict';

  var R = window.DagrunReport;
  var el = R.el, add = R.add, clear = R.clear, badge = R.badge, fmtDur = R.fmtDur,
    fmtTime = R.fmtTime;
  var SVG = 'http:' + '/' + '/www.w3.org/2000/svg';
  var TOKEN_KEY = 'dagrun-token', LOG_MAX = 5000, LOG_BATCH_MS = 100, REFRESH_MIN_MS = 800;

  var token = '';
  try { token = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { token = ''; }
  var authWaiters = [];
  var current = null;     /* the view shown: {close()} */

  /* ---- the API ---- */

  function ApiError(status, message, body) {
    this.status = status;
    this.message = message;
    this.body = body;
  }

  function headers(extra) {
    var h = extra || {};
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  /* Waits until the user gives a token (the form), then resolves. */
  function askToken(why) {
    var box = document.getElementById('auth');
    box.hidden = false;
    document.getElementById('auth-msg').textContent = why || '';
    document.getElementById('auth-token').focus();
    return new Promise(function (resolve) { authWaiters.push(resolve); });
  }

  document.getElementById('auth-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var input = document.getElementById('auth-token');
    token = input.value.trim();
    input.value = '';
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (err) { /* this page only */ }
    document.getElementById('auth').hidden = true;
    var w = authWaiters;
    authWaiters = [];
    w.forEach(function (f) { f(); });
  });

  /* fetch() with the token; a 401 asks for the token and tries again. */
  function request(path, opts) {
    opts = opts || {};
    var init = {method: opts.method || 'GET', headers: headers(opts.headers),
      cache: 'no-store', signal: opts.signal};
    if (opts.json !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.json);
    }
    return fetch(path, init).then(function (r) {
      if (r.status !== 401) return r;
      return askToken(token ? 'The server refused this token.' : '').then(function () {
        return request(path, opts);
      });
    });
  }

  function fail(r) {
    return r.text().then(function (t) {
      var body = null, msg = r.status + ' ' + r.statusText;
      try { body = JSON.parse(t); } catch (e) { body = null; }
      if (body && typeof body.error === 'string') msg = body.error;
      throw new ApiError(r.status, msg, body);
    });
  }

  function getJSON(path, opts) {
    return request(path, opts).then(function (r) {
      return r.ok ? r.json() : fail(r);
    });
  }

  function getText(path, opts) {
    return request(path, opts).then(function (r) {
      return r.ok ? r.text().then(function (t) { return {text: t, headers: r.headers}; }) : fail(r);
    });
  }

  function enc(s) { return encodeURIComponent(s); }

  function showError(err) {
    var p = document.getElementById('error');
    if (!err) { p.hidden = true; return; }
    if (err.name === 'AbortError') return;
    p.textContent = err.message || String(err);
    p.hidden = false;
  }

  /* ---- the event stream, read with fetch() ----

     Stream(path, onEvent) follows path (text/event-stream) and calls
     onEvent(type, data, id) for each event (data parsed as JSON when it
     is). It reconnects after the server's retry delay with Last-Event-ID,
     so nothing held by the server is missed; `reset` says the server no
     longer holds what was missed (onEvent gets it: fetch the state). */
  function Stream(path, onEvent) {
    this.path = path;
    this.onEvent = onEvent;
    this.lastId = null;
    this.retry = 2000;
    this.closed = false;
    this.ctl = null;
    this.open();
  }

  function setConn(state) {
    var c = document.getElementById('conn');
    c.textContent = state;
    c.setAttribute('data-state', state);
  }

  Stream.prototype.open = function () {
    var self = this, h = {Accept: 'text/event-stream'};
    if (this.closed) return;
    if (this.lastId !== null) h['Last-Event-ID'] = this.lastId;
    this.ctl = new AbortController();
    request(this.path, {headers: h, signal: this.ctl.signal}).then(function (r) {
      if (!r.ok) return fail(r);
      setConn('live');
      return self.read(r.body.getReader());
    }).catch(function (err) {
      if (self.closed) return;
      if (err instanceof ApiError && err.status < 500) {
        showError(err);       /* a request the server refuses: not again */
        self.closed = true;
      }
    }).then(function () {
      if (self.closed) return;
      setConn('reconnecting');
      setTimeout(function () { self.open(); }, self.retry);
    });
  };

  Stream.prototype.read = function (reader) {
    var self = this, dec = new TextDecoder(), buf = '';
    var ev = {type: '', data: [], id: null};
    function line(l) {
      if (l === '') {
        if (ev.id !== null) self.lastId = ev.id;
        if (ev.data.length) {
          var text = ev.data.join('\n'), data = text;
          try { data = JSON.parse(text); } catch (e) { data = text; }
          try { self.onEvent(ev.type || 'message', data, ev.id); } catch (e) { showError(e); }
        }
        ev = {type: '', data: [], id: null};
        return;
      }
      if (l.charAt(0) === ':') return;
      var k = l.indexOf(':'), field = k < 0 ? l : l.slice(0, k), value = k < 0 ? '' : l.slice(k + 1);
      if (value.charAt(0) === ' ') value = value.slice(1);
      if (field === 'event') ev.type = value;
      else if (field === 'data') ev.data.push(value);
      else if (field === 'id') ev.id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) self.retry = +value;
    }
    function pump() {
      return reader.read().then(function (x) {
        if (x.done || self.closed) return;
        buf += dec.decode(x.value, {stream: true});
        var lines = buf.split(/\r\n|\r|\n/);
        buf = lines.pop();
        lines.forEach(line);
        return pump();
      });
    }
    return pump();
  };

  Stream.prototype.close = function () {
    this.closed = true;
    if (this.ctl) this.ctl.abort();
  };

  /* Calls f at most every `ms` (and once more after the last call). */
  function throttle(f, ms) {
    var busy = false, again = false;
    function run() {
      busy = true;
      again = false;
      var t0 = Date.now();
      Promise.resolve(f()).catch(showError).then(function () {
        setTimeout(function () {
          busy = false;
          if (again) run();
        }, Math.max(ms, 2 * (Date.now() - t0)));
      });
    }
    return function () {
      if (busy) again = true;
      else run();
    };
  }

  /* ---- small pieces ---- */

  function link(href, text, cls) {
    var a = el('a', cls, text);
    a.href = href;
    return a;
  }

  function button(text, onClick, cls) {
    var b = el('button', cls, text);
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }

  function crumbs(items) {
    var c = document.getElementById('crumbs');
    clear(c);
    items.forEach(function (x) {
      add(c, el('span', 'sep', ' / '));
      add(c, x[1] ? link(x[1], x[0]) : el('span', null, x[0]));
    });
  }

  function table(parent, heads, cls) {
    var t = add(parent, el('table', 'grid' + (cls ? ' ' + cls : '')));
    var tr = add(add(t, el('thead')), el('tr'));
    heads.forEach(function (h) { add(tr, el('th', null, h)); });
    return add(t, el('tbody'));
  }

  function cell(tr, content, cls) {
    var td = add(tr, el('td', cls));
    if (content instanceof Node) td.appendChild(content);
    else if (content !== null && content !== undefined) td.textContent = String(content);
    return td;
  }

  /* A sparkline of recent run durations (oldest left), a bar per run
     coloured by its status. */
  function sparkline(recent) {
    var runs = (Array.isArray(recent) ? recent : []).slice().reverse();
    var w = 120, h = 24, n = Math.max(runs.length, 1), bw = w / n;
    var max = 0;
    runs.forEach(function (r) { if (typeof r.durationMs === 'number') max = Math.max(max, r.durationMs); });
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    runs.forEach(function (r, i) {
      var d = typeof r.durationMs === 'number' ? r.durationMs : null;
      var bh = d === null ? 2 : Math.max(2, Math.round(d / (max || 1) * (h - 2)));
      var rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', (i * bw + 1).toFixed(1));
      rect.setAttribute('y', h - bh);
      rect.setAttribute('width', Math.max(1, bw - 2).toFixed(1));
      rect.setAttribute('height', bh);
      rect.setAttribute('class', R.stClass(r.status));
      var title = document.createElementNS(SVG, 'title');
      title.textContent = (r.status || '') + (d === null ? '' : ' ' + fmtDur(d));
      rect.appendChild(title);
      svg.appendChild(rect);
    });
    return svg;
  }

  /* Fetches an SVG of the API and puts it in box; null, with a notice,
     when it cannot be drawn. */
  function loadSvg(path, box, signal) {
    return getText(path, {signal: signal}).then(function (x) {
      var doc = new DOMParser().parseFromString(x.text, 'image/svg+xml');
      var root = doc.documentElement;
      if (!root || root.nodeName !== 'svg') throw new Error('the graph is not SVG');
      var svg = document.importNode(root, true);
      clear(box);
      box.appendChild(svg);
      return svg;
    }).catch(function (err) {
      if (err.name === 'AbortError') return null;
      clear(box);
      add(box, el('p', 'notice', 'The graph is not drawn: ' + (err.message || err)));
      return null;
    });
  }

  function runLink(r) {
    return link('#/run/' + enc(r.id), r.id, 'mono');
  }

  /* ---- #/ : the workflows ---- */

  function WorkflowsView(root) {
    var self = this;
    this.ctl = new AbortController();
    crumbs([['workflows', null]]);
    add(root, el('h1', null, 'Workflows'));
    this.box = add(root, el('div'));
    this.box.id = 'workflows';
    this.load = throttle(function () { return self.draw(); }, 1000);
    this.load();
    this.stream = new Stream('/api/events', function (type) {
      if (type === 'run' || type === 'reset' || type === 'schedule') self.load();
    });
  }

  WorkflowsView.prototype.draw = function () {
    var self = this;
    return getJSON('/api/workflows', {signal: this.ctl.signal}).then(function (j) {
      var box = self.box, wfs = Array.isArray(j.workflows) ? j.workflows : [];
      clear(box);
      if (!wfs.length) {
        add(box, el('p', 'muted', 'No workflow: put *.yaml files in the server\'s --dir.'));
        return;
      }
      var tb = table(box, ['workflow', 'last run', 'recent durations', 'next scheduled', '']);
      wfs.forEach(function (w) {
        var tr = add(tb, el('tr', 'wf-row'));
        tr.setAttribute('data-workflow', w.name);
        var c = cell(tr, link('#/workflow/' + enc(w.name), w.name, 'mono'));
        if (!w.valid) add(c, el('span', 'badge st-failed', 'invalid'));
        if (w.description) add(c, el('div', 'muted', w.description));
        var last = w.lastRun;
        var lc = cell(tr, null);
        if (last) {
          add(lc, badge(last.status));
          lc.appendChild(document.createTextNode(' '));
          add(lc, link('#/run/' + enc(last.id), fmtTime(last.startMs), 'muted'));
        } else {
          lc.textContent = 'never run';
          lc.className = 'muted';
        }
        cell(tr, sparkline(w.recent));
        var sc = w.schedule, next = sc && Array.isArray(sc.next) && sc.next.length ? sc.next[0] : null;
        cell(tr, sc ? sc.cron + (next ? ' \u2192 ' + fmtTime(next.ms) : '') : '', 'mono muted');
        var ac = cell(tr, null);
        if (w.valid) add(ac, button('Start', function () { start(w.name, {}, ac); }));
      });
    });
  };

  WorkflowsView.prototype.close = function () {
    this.ctl.abort();
    this.stream.close();
  };

  /* Starts a run of workflow name and opens its page; errors go to msgBox. */
  function start(name, variables, msgBox) {
    showError(null);
    return getJSON('/api/workflows/' + enc(name) + '/runs',
      {method: 'POST', json: {variables: variables}}).then(function (j) {
      location.hash = '#/run/' + enc(j.id);
    }).catch(function (err) {
      var p = add(msgBox, el('div', 'err-msg', err.message || String(err)));
      p.className = 'err-msg start-error';
      if (err.body && typeof err.body.output === 'string' && err.body.output)
        add(msgBox, el('pre', 'err', err.body.output));
    });
  }

  /* ---- #/workflow/NAME ---- */

  function WorkflowView(root, name, query) {
    var self = this;
    this.ctl = new AbortController();
    crumbs([['workflows', '#/'], [name, null]]);
    var h = add(root, el('h1'));
    add(h, el('span', 'mono', name));
    this.info = add(root, el('div'));
    this.info.id = 'workflow';
    var cols = add(root, el('div', 'cols'));
    var left = add(cols, el('div'));
    add(left, el('h2', null, 'Graph'));
    this.graph = add(left, el('div', 'graph-box'));
    this.graph.id = 'graph';
    var right = add(cols, el('div'));
    add(right, el('h2', null, 'Runs'));
    this.runs = add(right, el('div'));
    add(right, el('h2', null, 'History'));
    this.stats = add(right, el('div'));
    var sig = this.ctl.signal;
    getJSON('/api/workflows/' + enc(name), {signal: sig}).then(function (w) {
      self.draw(w, query.start === '1');
    }).catch(showError);
    /* (not when the page is only passing through to start a run) */
    if (query.start !== '1') loadSvg('/api/workflows/' + enc(name) + '/graph.svg', this.graph, sig);
    this.loadRuns = throttle(function () {
      return getJSON('/api/runs?limit=20&workflow=' + enc(name), {signal: sig}).then(function (j) {
        clear(self.runs);
        var runs = Array.isArray(j.runs) ? j.runs : [];
        if (!runs.length) { add(self.runs, el('p', 'muted', 'No run yet.')); return; }
        var tb = table(self.runs, ['run', 'status', 'started', 'duration']);
        runs.forEach(function (r) {
          var tr = add(tb, el('tr'));
          cell(tr, runLink(r));
          cell(tr, badge(r.status));
          cell(tr, fmtTime(r.startMs));
          cell(tr, fmtDur(r.durationMs));
        });
      });
    }, 1000);
    this.loadRuns();
    getJSON('/api/stats?workflow=' + enc(name), {signal: sig}).then(function (st) {
      self.drawStats(st);
    }).catch(showError);
    this.stream = new Stream('/api/events', function (type, data) {
      if ((type === 'run' && data && data.workflow === name) || type === 'reset') self.loadRuns();
    });
  }

  WorkflowView.prototype.draw = function (w, autostart) {
    var box = this.info, name = w.name;
    if (w.description) add(box, el('p', null, w.description));
    var errs = Array.isArray(w.errors) ? w.errors : [];
    if (errs.length) {
      var ul = add(box, el('ul', 'errors'));
      errs.forEach(function (e) {
        add(ul, el('li', e.severity === 'error' ? 'err-msg' : 'muted',
          (e.line ? 'line ' + e.line + (e.column ? ':' + e.column : '') + ': ' : '') +
          e.severity + ': ' + e.message));
      });
    }
    var sc = w.schedule;
    if (sc) {
      var p = add(box, el('p', 'mono'));
      p.textContent = 'schedule ' + sc.cron + ' (' + sc.timezone + ', overlap ' + sc.overlap +
        (sc.catchup ? ', catchup' : '') + ')';
      (Array.isArray(sc.next) ? sc.next : []).forEach(function (t) {
        add(box, el('div', 'muted mono', 'next: ' + fmtTime(t.ms)));
      });
    }
    if (!w.valid) {
      add(box, el('p', 'err-msg', 'This workflow is invalid: it cannot be started.'));
      return;
    }
    var form = add(box, el('form', 'vars'));
    var vars = w.variables && typeof w.variables === 'object' ? w.variables : {};
    var inputs = {};
    Object.keys(vars).forEach(function (k) {
      var lab = add(form, el('label'));
      add(lab, el('span', 'mono', k + ' '));
      var inp = add(lab, el('input'));
      inp.name = k;
      inp.value = vars[k] === null || vars[k] === undefined ? '' : String(vars[k]);
      inputs[k] = {input: inp, initial: inp.value};
    });
    var msg = el('div');
    var b = add(form, el('button', null, 'Start a run'));
    b.type = 'submit';
    b.id = 'start';
    add(form, msg);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      clear(msg);
      var v = {};
      Object.keys(inputs).forEach(function (k) {
        if (inputs[k].input.value !== inputs[k].initial) v[k] = inputs[k].input.value;
      });
      b.disabled = true;
      start(name, v, msg).then(function () { b.disabled = false; });
    });
    if (autostart) {
      /* once: the fragment no longer says start, so a reload does not */
      history.replaceState(null, '', '#/workflow/' + enc(name));
      b.click();
    }
  };

  WorkflowView.prototype.drawStats = function (st) {
    var box = this.stats, d = st.durationMs;
    clear(box);
    add(box, el('p', null, st.runs + ' runs' + (d ? ': p50 ' + fmtDur(d.p50Ms) + ', p95 ' +
      fmtDur(d.p95Ms) + ', max ' + fmtDur(d.maxMs) : '')));
    var tasks = Array.isArray(st.tasks) ? st.tasks : [];
    if (!tasks.length) return;
    var tb = table(box, ['task', 'p50', 'p95', 'failures']);
    tasks.forEach(function (t) {
      var tr = add(tb, el('tr'));
      cell(tr, t.id, 'mono');
      cell(tr, t.durationMs ? fmtDur(t.durationMs.p50Ms) : '');
      cell(tr, t.durationMs ? fmtDur(t.durationMs.p95Ms) : '');
      cell(tr, t.failures);
    });
  };

  WorkflowView.prototype.close = function () {
    this.ctl.abort();
    this.stream.close();
  };

  /* ---- #/run/ID ---- */

  var TERMINAL = ['completed', 'failed', 'cancelled', 'interrupted', 'failed-to-start'];

  function RunView(root, id) {
    var self = this;
    this.id = id;
    this.ctl = new AbortController();
    this.tasks = [];          /* index -> {id, status} */
    this.items = [];          /* index -> the live list's element */
    this.selected = -1;
    this.svg = null;
    this.run = null;
    crumbs([['workflows', '#/'], ['run ' + id, null]]);
    var head = add(root, el('div', 'run-head'));
    this.title = add(head, el('h1'));
    add(this.title, el('span', 'mono', id));
    this.status = add(head, el('span', 'badge st-other', 'loading'));
    this.status.id = 'run-status-live';
    var bar = add(head, el('div', 'toolbar'));
    this.bCancel = add(bar, button('Cancel', function () { self.action('cancel', {}); }));
    this.bCancel.id = 'cancel';
    this.bRerun = add(bar, button('Rerun failed', function () { self.action('rerun', {failed: true}); }));
    this.bRerun.id = 'rerun-failed';
    this.bResume = add(bar, button('Resume', function () { self.action('resume', {}); }));
    this.bResume.id = 'resume';
    add(bar, button('Report', function () { self.report(); }));
    this.msg = add(bar, el('span', 'muted'));
    this.msg.id = 'action-msg';
    this.parts = {};
    ['summary', 'failures', 'timeline', 'details'].forEach(function (p) {
      self.parts[p] = el(p === 'summary' ? 'header' : 'section', p === 'summary' ? 'summary' : null);
      self.parts[p].id = 'r-' + p;
    });
    add(root, this.parts.summary);
    add(root, this.parts.failures).hidden = true;
    var live = add(root, el('section'));
    add(live, el('h2', null, 'Tasks'));
    this.list = add(live, el('div', 'live-tasks'));
    this.list.id = 'live-tasks';
    add(root, el('h2', null, 'Timeline'));
    add(root, this.parts.timeline);
    var cols = add(root, el('div', 'cols'));
    var g = add(cols, el('section'));
    add(g, el('h2', null, 'Dependency graph'));
    this.graph = add(g, el('div', 'graph-box'));
    this.graph.id = 'graph';
    this.graph.addEventListener('click', function (e) {
      var n = e.target.closest('g.node'), mt = n ? /^dagrun-node-(\d+)$/.exec(n.id) : null;
      if (mt && self.rendered) self.rendered.select(+mt[1], 'graph');
    });
    var d = add(cols, this.parts.details);
    add(d, el('p', 'muted', 'Click a task in the timeline or the graph.'));
    var logs = add(root, el('section'));
    var lh = add(logs, el('h2', null, 'Logs '));
    this.logFilter = add(lh, el('select'));
    add(this.logFilter, el('option', null, 'every task')).value = '';
    this.logFilter.addEventListener('change', function () { self.filterLogs(); });
    this.logs = add(logs, el('div', 'logs mono'));
    this.logs.id = 'logs';
    this.nLogs = 0;
    this.refresh = throttle(function () { return self.redraw(); }, REFRESH_MIN_MS);
    this.stream = null;
    /* The run (`id` may be a prefix or "last"), then its stream (since=0:
       what the server still holds of this run, in order) and the state
       again once the stream answers: a status an event set is never taken
       back by a fetch (setTask), and the events come in order. */
    this.load().then(function () {
      if (!self.full || self.closed) return;
      self.stream = new Stream('/api/events?since=0&run=' + enc(self.full), function (type, data) {
        self.event(type, data);
      });
    });
  }

  RunView.prototype.event = function (type, data) {
    if (type === 'hello' || type === 'reset') {
      this.load();
      return;
    }
    if (!data || typeof data !== 'object' || (data.run !== undefined ? data.run : data.id) !== this.full)
      return;
    if (type === 'task') {
      this.setTask(data.index, data.task, data.status, true);
      this.refresh();
    } else if (type === 'attempt') {
      this.refresh();
    } else if (type === 'run') {
      this.setRun(data, true);
      this.refresh();
    } else if (type === 'log') {
      this.addLog(data);
      this.refresh();         /* the running attempts' bars grow */
    }
  };

  /* The first state: the run and its tasks, then the graph. */
  RunView.prototype.load = function () {
    var self = this, sig = this.ctl.signal;
    return getJSON('/api/runs/' + enc(this.full || this.id), {signal: sig}).then(function (j) {
      if (!self.full && j.run && j.run.id) self.full = j.run.id;
      self.setRun(j.run, false);
      (Array.isArray(j.tasks) ? j.tasks : []).forEach(function (t) {
        self.setTask(t.index, t.id, t.status, false);
      });
      if (j.tasks && j.tasks.length) self.loadGraph();
      self.refresh();
    }).catch(showError);
  };

  RunView.prototype.loadGraph = function () {
    var self = this;
    if (this.svg || this.svgLoading) return;
    this.svgLoading = true;
    loadSvg('/api/runs/' + enc(this.full) + '/graph.svg', this.graph, this.ctl.signal).then(function (svg) {
      self.svg = svg;
      self.tasks.forEach(function (t, i) { if (t) self.paint(i); });
    });
  };

  /* The run's status; viaEvent: from the stream. As for tasks, a status
     an event set is never taken back by a fetch: a fetch's answer may
     have been read before the event's change and arrive after it (on
     another connection), which would leave a stopped run shown running. */
  RunView.prototype.setRun = function (run, viaEvent) {
    if (!run) return;
    if (this.runLive && !viaEvent) return;
    this.runLive = this.runLive || !!viaEvent;
    this.run = run;
    var st = run.status || 'unknown';
    this.status.textContent = st;
    this.status.className = 'badge ' + R.stClass(st);
    this.status.setAttribute('data-status', st);
    if (run.workflow && !this.wfLink) {
      this.wfLink = true;
      crumbs([['workflows', '#/'], [run.workflow, '#/workflow/' + enc(run.workflow)],
        ['run ' + this.id, null]]);
    }
    var running = st === 'running' || st === 'starting';
    this.bCancel.disabled = !running;
    this.bRerun.disabled = running || st === 'completed' || st === 'starting';
    this.bResume.disabled = st !== 'interrupted';
  };

  /* A task's status: the live list and the graph node; viaEvent: it came
     from the event stream (data-live="true"), not from a fetch. */
  RunView.prototype.setTask = function (i, tid, status, viaEvent) {
    if (typeof i !== 'number' || i < 0 || i > 100000) return;
    var t = this.tasks[i];
    if (t && t.live && !viaEvent) return;   /* an event is newer than any fetch */
    if (!t) {
      t = this.tasks[i] = {id: tid, status: status, live: false};
      var item = el('a', 'live-task');
      item.href = '#/run/' + enc(this.id) + '/task/' + enc(tid);
      item.setAttribute('data-task', tid);
      add(item, el('span', 'mono', tid));
      item.appendChild(document.createTextNode(' '));
      item.appendChild(badge(status));
      this.items[i] = item;
      var next = null;
      for (var k = i + 1; k < this.items.length && !next; k++) if (this.items[k]) next = this.items[k];
      this.list.insertBefore(item, next);
      add(this.logFilter, el('option', null, tid)).value = tid;
    }
    t.status = status;
    t.live = t.live || viaEvent;
    var it = this.items[i], b = it.lastChild;
    it.setAttribute('data-status', status);
    if (viaEvent) it.setAttribute('data-live', 'true');
    b.textContent = status;
    b.className = 'badge ' + R.stClass(status);
    this.paint(i);
  };

  /* Colours graph node i by its task's status (ui.css overrides the
     fill Graphviz wrote). */
  RunView.prototype.paint = function (i) {
    if (!this.svg || !this.tasks[i]) return;
    var g = this.svg.querySelector('#dagrun-node-' + i);
    if (!g) return;
    var cls = 'node ' + R.stClass(this.tasks[i].status) + (i === this.selected ? ' sel' : '');
    g.setAttribute('class', cls);
  };

  /* Redraws the summary, failures, timeline and details with the report's
     code from the run document, keeping the timeline's filter, sort,
     scroll and the selected task. */
  RunView.prototype.redraw = function () {
    var self = this;
    if (!this.full) return null;
    return getJSON('/api/runs/' + enc(this.full) + '/document', {signal: this.ctl.signal}).then(function (doc) {
      var old = self.rendered ? self.rendered.timeline : null, keep = null;
      if (old) keep = {q: old.filter.value, st: old.status.value, sort: old.sort.value,
        top: old.view.scrollTop};
      ['summary', 'failures', 'timeline', 'details'].forEach(function (p) { clear(self.parts[p]); });
      self.parts.failures.hidden = true;
      self.rendered = R.render(doc, {summary: 'r-summary', failures: 'r-failures',
        timeline: 'r-timeline', details: 'r-details', graph: 'r-no-graph', noHash: true,
        select: self.selected, onSelect: function (i) { self.select(i); }});
      if (self.selected < 0) {
        clear(self.parts.details);
        add(self.parts.details, el('p', 'muted', 'Click a task in the timeline or the graph.'));
      }
      var tl = self.rendered.timeline;
      if (keep) {
        tl.filter.value = keep.q;
        tl.status.value = keep.st;
        tl.sort.value = keep.sort;
        tl.update();
        tl.view.scrollTop = keep.top;
      }
      document.body.setAttribute('data-run-rendered', String(Date.now()));
    }).catch(function (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    });
  };

  RunView.prototype.select = function (i) {
    var prev = this.selected;
    this.selected = i;
    if (prev >= 0) this.paint(prev);
    this.paint(i);
    var t = this.tasks[i], d = this.parts.details;
    if (t && d.firstChild) {
      var p = el('p');
      p.appendChild(link('#/run/' + enc(this.id) + '/task/' + enc(t.id), 'task page: attempts, logs, history'));
      d.insertBefore(p, d.firstChild.nextSibling);
    }
  };

  /* Log lines are queued and added in batches (LOG_BATCH_MS apart): one
     layout per batch, not one per line, whatever the run prints. */
  RunView.prototype.addLog = function (e) {
    var self = this;
    this.logQueue = this.logQueue || [];
    this.logQueue.push(e);
    if (!this.logTimer) this.logTimer = setTimeout(function () { self.flushLogs(); }, LOG_BATCH_MS);
  };

  RunView.prototype.flushLogs = function () {
    var q = this.logQueue, f = this.logFilter.value, frag = document.createDocumentFragment();
    this.logQueue = [];
    this.logTimer = null;
    if (this.closed) return;
    var stick = this.logs.scrollTop + this.logs.clientHeight >= this.logs.scrollHeight - 4;
    var n = 0;
    q.forEach(function (e) {
      var lines = String(e.text || '').split('\n');
      if (lines.length && lines[lines.length - 1] === '') lines.pop();
      lines.forEach(function (l) {
        var div = el('div', 'log-line' + (e.stream === 'stderr' ? ' stderr' : ''));
        div.setAttribute('data-task', e.task);
        add(div, el('span', 'log-task', e.task + (e.attempt > 1 ? '#' + e.attempt : '')));
        div.appendChild(document.createTextNode(l));
        if (f && e.task !== f) div.hidden = true;
        frag.appendChild(div);
        n++;
      });
    });
    this.logs.appendChild(frag);
    this.nLogs += n;
    while (this.nLogs > LOG_MAX && this.logs.firstChild) {
      this.logs.removeChild(this.logs.firstChild);
      this.nLogs--;
    }
    if (stick) this.logs.scrollTop = this.logs.scrollHeight;
  };

  RunView.prototype.filterLogs = function () {
    var f = this.logFilter.value;
    for (var n = this.logs.firstChild; n; n = n.nextSibling)
      n.hidden = !!f && n.getAttribute('data-task') !== f;
  };

  RunView.prototype.action = function (what, body) {
    var self = this;
    this.msg.textContent = what + '...';
    getJSON('/api/runs/' + enc(this.full || this.id) + '/' + what, {method: 'POST', json: body}).then(function (j) {
      self.msg.textContent = what + ': ' + (j.status || 'ok');
      if (j.run) self.setRun(j.run, false);
      self.refresh();
    }).catch(function (err) {
      self.msg.textContent = what + ': ' + (err.message || err);
    });
  };

  /* The HTML report, downloaded (it is a page of its own, with its own
     policy: opened from a file it draws itself). */
  RunView.prototype.report = function () {
    var self = this;
    request('/api/runs/' + enc(this.full || this.id) + '/report').then(function (r) {
      return r.ok ? r.blob() : fail(r);
    }).then(function (blob) {
      var a = el('a');
      a.href = URL.createObjectURL(blob);
      a.download = 'dagrun-report-' + self.id + '.html';
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }).catch(function (err) { self.msg.textContent = 'report: ' + (err.message || err); });
  };

  RunView.prototype.close = function () {
    this.closed = true;
    this.ctl.abort();
    if (this.stream) this.stream.close();
  };

  /* ---- #/run/ID/task/TASK ---- */

  function TaskView(root, id, task) {
    var self = this;
    this.id = id;
    this.task = task;
    this.ctl = new AbortController();
    crumbs([['workflows', '#/'], ['run ' + id, '#/run/' + enc(id)], [task, null]]);
    var h = add(root, el('h1'));
    add(h, el('span', 'mono', task));
    h.appendChild(document.createTextNode(' '));
    this.status = add(h, badge('pending'));
    this.status.id = 'task-status';
    this.hist = add(root, el('p', 'muted'));
    this.hist.id = 'task-history';
    add(root, el('h2', null, 'Attempts'));
    this.att = add(root, el('div'));
    this.att.id = 'attempts';
    this.logBox = add(root, el('div'));
    this.logs = {};           /* attempt -> {pre, off, ended} */
    this.load = throttle(function () { return self.draw(); }, REFRESH_MIN_MS);
    this.stream = null;
    this.load();
  }

  TaskView.prototype.draw = function () {
    var self = this, sig = this.ctl.signal;
    return getJSON('/api/runs/' + enc(this.id), {signal: sig}).then(function (j) {
      var t = null;
      (Array.isArray(j.tasks) ? j.tasks : []).forEach(function (x) { if (x.id === self.task) t = x; });
      if (!t) throw new Error('run ' + self.id + ' has no task ' + self.task);
      if (!self.stream && !self.closed && j.run && j.run.id) {
        self.stream = new Stream('/api/events?run=' + enc(j.run.id), function (type, d) {
          if (!d || d.task !== self.task) return;
          if (type === 'log') self.follow(d.attempt);
          else if (type === 'task' || type === 'attempt') self.load();
        });
      }
      self.status.textContent = t.status;
      self.status.className = 'badge ' + R.stClass(t.status);
      self.status.setAttribute('data-status', t.status);
      clear(self.att);
      if (t.error) add(self.att, el('p', 'err-msg', (t.errorClass ? t.errorClass + ': ' : '') + t.error));
      var atts = Array.isArray(t.attempts) ? t.attempts : [];
      if (!atts.length) add(self.att, el('p', 'muted', 'No attempt yet.'));
      else {
        var tb = table(self.att, ['attempt', 'outcome', 'started', 'duration', 'exit', 'error']);
        atts.forEach(function (a) {
          var tr = add(tb, el('tr', 'attempt-row'));
          cell(tr, a.attempt);
          cell(tr, badge(a.outcome === 'ok' ? 'completed' : a.outcome));
          cell(tr, fmtTime(a.startMs));
          cell(tr, fmtDur(a.durationMs));
          cell(tr, a.exitCode);
          cell(tr, (a.errorClass ? a.errorClass + ': ' : '') + (a.error || ''), 'err-msg');
          self.attemptLog(a);
        });
      }
      if (!self.histDone && j.run && j.run.workflow) {
        self.histDone = true;
        getJSON('/api/stats?workflow=' + enc(j.run.workflow), {signal: sig}).then(function (st) {
          var x = null;
          (Array.isArray(st.tasks) ? st.tasks : []).forEach(function (y) { if (y.id === self.task) x = y; });
          var d = x && x.durationMs;
          self.hist.textContent = d ? 'History over the workflow\'s recent runs: p50 ' +
            fmtDur(d.p50Ms) + ', p95 ' + fmtDur(d.p95Ms) + ', max ' + fmtDur(d.maxMs) + ' (' +
            d.count + ' completed), ' + x.failures + ' failed.' :
            'No history: no completed run of this task yet.';
        }).catch(showError);
      }
    });
  };

  TaskView.prototype.attemptLog = function (a) {
    var L = this.logs[a.attempt];
    if (!L) {
      var box = add(this.logBox, el('div', 'attempt'));
      add(box, el('h3', null, 'Attempt ' + a.attempt + ' output'));
      L = this.logs[a.attempt] = {out: add(box, el('pre', 'log')), off: 0, ended: false, busy: false};
      L.out.setAttribute('data-attempt', a.attempt);
    }
    this.follow(a.attempt);
  };

  /* Reads the attempt's stdout from where it stopped (an event said it
     grew, or it ended). */
  TaskView.prototype.follow = function (n) {
    var self = this, L = this.logs[n];
    if (!L || L.ended) return;
    if (L.busy) { L.again = true; return; }
    L.busy = true;
    L.again = false;
    getText('/api/runs/' + enc(this.id) + '/tasks/' + enc(this.task) + '/log?attempt=' + n +
      '&offset=' + L.off, {signal: this.ctl.signal}).then(function (x) {
      L.out.appendChild(document.createTextNode(x.text));
      var next = Number(x.headers.get('X-Dagrun-Next-Offset'));
      if (isFinite(next)) L.off = next;
      var size = Number(x.headers.get('X-Dagrun-Log-Size'));
      if (x.headers.get('X-Dagrun-Attempt-Ended') === 'true' && !(size > L.off)) L.ended = true;
      else if (size > L.off) L.again = true;
    }).catch(function (err) {
      if (err.status === 404) L.again = false;
      else showError(err);
    }).then(function () {
      L.busy = false;
      if (L.again) self.follow(n);
    });
  };

  TaskView.prototype.close = function () {
    this.closed = true;
    this.ctl.abort();
    if (this.stream) this.stream.close();
  };

  /* ---- the router ---- */

  function route() {
    var h = location.hash || '#/', q = {}, k = h.indexOf('?');
    if (k >= 0) {
      h.slice(k + 1).split('&').forEach(function (p) {
        var kv = p.split('=');
        try { q[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1] || ''); } catch (e) { /* skip */ }
      });
      h = h.slice(0, k);
    }
    var parts = h.replace(/^#\/?/, '').split('/').map(function (s) {
      try { return decodeURIComponent(s); } catch (e) { return s; }
    });
    if (current) current.close();
    showError(null);
    var root = document.getElementById('view');
    clear(root);
    if (parts[0] === 'workflow' && parts[1]) current = new WorkflowView(root, parts[1], q);
    else if (parts[0] === 'run' && parts[1] && parts[2] === 'task' && parts[3])
      current = new TaskView(root, parts[1], parts[3]);
    else if (parts[0] === 'run' && parts[1]) current = new RunView(root, parts[1]);
    else current = new WorkflowsView(root);
    window.scrollTo(0, 0);
  }

  window.addEventListener('hashchange', route);
  window.addEventListener('unhandledrejection', function (e) { showError(e.reason); });
  route();
  document.body.setAttribute('data-ui', 'ready');
})();
