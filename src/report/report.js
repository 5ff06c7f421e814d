/* report.js: draws a dagrun run document (docs/run-document.md) in the
   page: the summary, the failed tasks, the timeline (one row per task, a
   bar per attempt, ready-waits and retry waits apart), the selected task's
   attempts, and the status graph's clicks. Inlined by embed.py into every
   HTML report; the server's pages can load it as it is and call
   DagrunReport.render(doc).

   Rules: document text reaches the page through textContent and DOM
   attribute setters only (never innerHTML, never a URL attribute); class
   names made from document values come from a fixed list. Rows are
   virtualised above VIRTUAL_OVER tasks: only the rows in view (and a few
   around) exist in the DOM. No comment here may hold two slashes in a
   row: embed.py refuses them, so that the page holds nothing like a URL. */
(function () {
  'use strict';

  var STATUSES = ['pending', 'running', 'completed', 'failed', 'retrying',
    'skipped', 'cancelled', 'interrupted'];
  var SEVERITY = {failed: 0, interrupted: 1, cancelled: 2, running: 3,
    retrying: 4, pending: 5, completed: 6, skipped: 7};
  var SIGNALS = {1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL',
    6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL', 11: 'SIGSEGV',
    13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM', 24: 'SIGXCPU', 25: 'SIGXFSZ'};
  var ROW = 22, VIRTUAL_OVER = 300, OVERSCAN = 12, FAILURES_MAX = 10,
    TAIL_LINES = 12;

  /* ---- small helpers ---- */

  function has(o, k) {
    return o !== null && typeof o === 'object' &&
      Object.prototype.hasOwnProperty.call(o, k) && o[k] !== null &&
      o[k] !== undefined;
  }
  function num(o, k) {
    return has(o, k) && typeof o[k] === 'number' && isFinite(o[k]) ? o[k] : null;
  }
  function str(o, k) { return has(o, k) && typeof o[k] === 'string' ? o[k] : null; }
  function obj(o, k) { return has(o, k) && typeof o[k] === 'object' ? o[k] : null; }
  function stClass(s) { return 'st-' + (STATUSES.indexOf(s) >= 0 ? s : 'other'); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function badge(status) { return el('span', 'badge ' + stClass(status), status); }
  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function fmtDur(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '';
    if (ms < 0) ms = 0;
    if (ms < 1000) return Math.round(ms) + 'ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + 's';
    if (ms < 3600000) return Math.floor(ms / 60000) + 'm' + pad(Math.floor(ms / 1000) % 60) + 's';
    return Math.floor(ms / 3600000) + 'h' + pad(Math.floor(ms / 60000) % 60) + 'm';
  }
  function fmtTime(ms) {
    if (ms === null) return '';
    var d = new Date(ms);
    return isNaN(d.getTime()) ? '' : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
  }
  function fmtUs(us) {
    if (us === null) return '';
    return us < 1000 ? us + '\u00b5s' : fmtDur(us / 1000);
  }
  function fmtBytes(b) {
    if (b === null) return '';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : String(b)) + ' ' + u[i];
  }
  function lastLines(text, n) {
    var lines = text.split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines.slice(-n).join('\n');
  }

  /* ---- the model: the document with what every view needs computed ---- */

  function Model(doc) {
    var self = this;
    this.doc = doc;
    this.run = obj(doc, 'run') || {};
    this.tasks = Array.isArray(doc.tasks) ? doc.tasks : [];
    this.byId = new Map();
    this.dependents = this.tasks.map(function () { return []; });
    this.counts = {};
    this.attempts = 0;
    this.retries = 0;
    this.withHistory = 0;
    this.slow = 0;
    var start = num(this.run, 'startMs'), lo = start, hi = start;
    function see(t) {
      if (t === null) return;
      if (lo === null || t < lo) lo = t;
      if (hi === null || t > hi) hi = t;
    }
    var open = num(this.run, 'endMs') === null;
    see(num(this.run, 'endMs'));
    this.tasks.forEach(function (t, i) {
      self.byId.set(str(t, 'id'), i);
      var st = str(t, 'status') || 'pending';
      self.counts[st] = (self.counts[st] || 0) + 1;
      var atts = Array.isArray(t.attempts) ? t.attempts : [];
      self.attempts += atts.length;
      self.retries += Math.max(0, atts.length - 1);
      atts.forEach(function (a) {
        see(num(a, 'readyMs'));
        see(num(a, 'startMs'));
        see(num(a, 'endMs'));
        if (num(a, 'endMs') === null) open = true;
      });
    });
    /* the time the document was made counts only while something runs */
    if (open) see(num(doc, 'generatedMs'));
    this.tasks.forEach(function (t, i) {
      (Array.isArray(t.dependencies) ? t.dependencies : []).forEach(function (d) {
        var j = self.byId.get(str(d, 'taskId'));
        if (j !== undefined) self.dependents[j].push(i);
      });
    });
    this.t0 = lo === null ? 0 : lo;
    this.t1 = hi === null || hi <= this.t0 ? this.t0 + 1 : hi;
    this.openEnd = num(doc, 'generatedMs') !== null ? num(doc, 'generatedMs') :
      num(this.run, 'endMs') !== null ? num(this.run, 'endMs') : this.t1;
    this.info = this.tasks.map(function (t) { return self.taskInfo(t); });
  }

  /* When attempt a ends as drawn: its end, or the document's end. */
  Model.prototype.endOf = function (a) {
    var s = num(a, 'startMs'), e = num(a, 'endMs');
    if (e === null) e = this.openEnd;
    return s !== null && e < s ? s : e;
  };

  /* Spans of a task: waits, retry waits and attempts, in time order. */
  Model.prototype.taskInfo = function (t) {
    var self = this, atts = Array.isArray(t.attempts) ? t.attempts : [];
    var spans = [], first = null, end = null;
    atts.forEach(function (a, k) {
      var s = num(a, 'startMs');
      if (s === null) return;
      var r = num(a, 'readyMs'), e = self.endOf(a);
      if (r !== null && r < s) spans.push({kind: 'wait', s: r, e: s, k: k});
      if (k > 0 && num(atts[k - 1], 'endMs') !== null) {
        var pe = num(atts[k - 1], 'endMs'), next = r !== null && r < s ? r : s;
        if (next > pe) spans.push({kind: 'retry', s: pe, e: next, k: k});
      }
      spans.push({kind: 'attempt', s: s, e: e, k: k, open: num(a, 'endMs') === null});
      if (first === null) first = s;
      end = e;
    });
    var last = atts.length ? atts[atts.length - 1] : null;
    var dur = last ? (num(last, 'durationMs') !== null ? num(last, 'durationMs') :
      num(last, 'startMs') !== null ? this.endOf(last) - num(last, 'startMs') : null) : null;
    var h = obj(t, 'history'), p50 = num(h, 'p50Ms'), p95 = num(h, 'p95Ms');
    var info = {spans: spans, first: first, end: end,
      wall: first !== null ? end - first : null, dur: dur, p50: p50, p95: p95,
      slow: p95 !== null && dur !== null && dur > p95};
    if (p95 !== null) this.withHistory++;
    if (info.slow) this.slow++;
    return info;
  };

  Model.prototype.pct = function (t) {
    return (t - this.t0) / (this.t1 - this.t0) * 100;
  };

  /* ---- the summary ---- */

  function fact(parent, label, value) {
    var s = add(parent, el('span'));
    add(s, el('span', 'muted', label + ' '));
    add(s, el('b', null, value));
    return s;
  }

  function renderSummary(root, m) {
    var run = m.run;
    var facts = add(root, el('div', 'facts'));
    var st = add(facts, el('span'));
    add(st, badge(str(run, 'status') || 'unknown')).id = 'run-status';
    if (num(run, 'runAttempt') !== null && num(run, 'runAttempt') > 1)
      fact(facts, 'run attempt', num(run, 'runAttempt'));
    fact(facts, 'started', fmtTime(num(run, 'startMs')));
    if (num(run, 'endMs') !== null) {
      fact(facts, 'ended', fmtTime(num(run, 'endMs')));
      fact(facts, 'wall time', fmtDur(num(run, 'endMs') - num(run, 'startMs')));
    } else {
      fact(facts, 'running for', fmtDur(m.openEnd - num(run, 'startMs')));
    }
    fact(facts, 'tasks', m.tasks.length);
    fact(facts, 'attempts', m.attempts + (m.retries ? ' (' + m.retries +
      (m.retries === 1 ? ' retry)' : ' retries)') : ''));
    if (str(run, 'path')) fact(facts, 'file', str(run, 'path'));
    var counts = add(root, el('div', 'counts'));
    counts.id = 'counts';
    STATUSES.concat(Object.keys(m.counts).filter(function (s) {
      return STATUSES.indexOf(s) < 0;
    })).forEach(function (s) {
      if (m.counts[s]) add(counts, el('span', 'badge ' + stClass(s), m.counts[s] + ' ' + s));
    });
    if (str(run, 'error')) add(root, el('p', 'err-msg', str(run, 'error')));
    if (m.withHistory)
      add(root, el('p', 'muted', m.slow + ' of ' + m.withHistory +
        ' tasks with history took longer than their p95 over past runs.'));
  }

  /* ---- failures ---- */

  function renderFailures(root, m, select) {
    /* the failures that have a cause of their own first; those of a
       dependency are only counted */
    var own = [], dep = 0;
    m.tasks.forEach(function (t, i) {
      if (str(t, 'status') !== 'failed') return;
      var atts = Array.isArray(t.attempts) ? t.attempts : [];
      if (!atts.length && str(t, 'errorClass') === 'dependency') dep++;
      else own.push(i);
    });
    if (!own.length && !dep) return;
    root.hidden = false;
    var n = own.length + dep;
    add(root, el('h2', null, n === 1 ? '1 task failed' : n + ' tasks failed'));
    own.slice(0, FAILURES_MAX).forEach(function (i) {
      var t = m.tasks[i], atts = Array.isArray(t.attempts) ? t.attempts : [];
      var last = atts.length ? atts[atts.length - 1] : null;
      var div = add(root, el('div', 'failure'));
      div.dataset.i = i;
      add(div, el('span', 'tid mono', str(t, 'id')));
      var cls = str(t, 'errorClass') || str(last, 'errorClass');
      if (cls) add(div, el('span', 'muted', ' (' + cls + ')'));
      var msg = str(t, 'error') || str(last, 'error');
      if (msg) add(div, el('span', 'err-msg', ': ' + msg));
      var tail = str(obj(last, 'stderr'), 'tail') || str(obj(last, 'stdout'), 'tail');
      if (tail) add(div, el('pre', 'err', lastLines(tail, 4)));
      div.addEventListener('click', function () { select(i, 'failures'); });
    });
    var more = [];
    if (own.length > FAILURES_MAX) more.push((own.length - FAILURES_MAX) + ' more');
    if (dep) more.push(dep + (dep === 1 ? ' task' : ' tasks') +
      ' failed because a dependency failed (never started)');
    if (more.length)
      add(root, el('p', 'muted', more.join('; ') + ': filter the timeline by status "failed".'));
  }

  /* ---- the timeline ---- */

  function Timeline(root, m, select) {
    var self = this;
    this.m = m;
    this.select = select;
    this.selected = -1;
    var bar = add(root, el('div', 'toolbar'));
    this.filter = add(bar, el('input'));
    this.filter.type = 'search';
    this.filter.placeholder = 'filter by task id';
    this.filter.setAttribute('aria-label', 'filter by task id');
    this.status = add(bar, el('select'));
    add(this.status, el('option', null, 'every status')).value = '';
    Object.keys(m.counts).sort().forEach(function (s) {
      add(self.status, el('option', null, s + ' (' + m.counts[s] + ')')).value = s;
    });
    this.sort = add(bar, el('select'));
    [['start', 'by start'], ['status', 'failures first'], ['dur', 'longest first'],
      ['id', 'by id']].concat(m.withHistory ? [['slow', 'slowest against p95']] : [])
      .forEach(function (o) { add(self.sort, el('option', null, o[1])).value = o[0]; });
    this.shown = add(bar, el('span', 'muted'));

    var tl = add(root, el('div', 'tl'));
    var head = add(tl, el('div', 'tl-head'));
    add(head, el('div', null, 'task'));
    add(head, el('div', null, 'status'));
    add(head, el('div', null, m.withHistory ? 'last attempt (p50 / p95)' : 'last attempt'));
    this.axis(add(head, el('div', 'axis')));
    this.view = add(tl, el('div', 'tl-view'));
    this.rows = add(this.view, el('div', 'tl-rows'));
    this.legend(add(root, el('div', 'legend')));
    this.tip = document.getElementById('tip');

    var pending = false;
    this.view.addEventListener('scroll', function () {
      if (pending) return;
      pending = true;
      window.requestAnimationFrame(function () { pending = false; self.draw(); });
    });
    var timer = null;
    this.filter.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(function () { self.update(); }, 120);
    });
    this.status.addEventListener('change', function () { self.update(); });
    this.sort.addEventListener('change', function () { self.update(); });
    this.rows.addEventListener('click', function (e) {
      var row = e.target.closest('.tl-row');
      if (row) select(+row.dataset.i, 'timeline');
    });
    this.rows.addEventListener('mouseover', function (e) { self.hover(e); });
    this.rows.addEventListener('mousemove', function (e) { self.place(e); });
    this.rows.addEventListener('mouseleave', function () { if (self.tip) self.tip.hidden = true; });
    this.update();
  }

  Timeline.prototype.axis = function (div) {
    var m = this.m, span = m.t1 - m.t0, k = 0;
    var steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000,
      15000, 30000, 60000, 120000, 300000, 600000, 900000, 1800000, 3600000,
      7200000, 10800000, 21600000, 43200000, 86400000];
    while (k < steps.length - 1 && span / steps[k] > 8) k++;
    var step = Math.max(steps[k], span / 8);
    for (var t = 0; t <= span; t += step) {
      var s = add(div, el('span', t === 0 ? 'first' : null, fmtDur(t)));
      s.style.left = (t / span * 100) + '%';
      if (t / span > 0.92) s.className = 'last';
    }
  };

  Timeline.prototype.legend = function (div) {
    [['bar st-completed', 'completed attempt'], ['bar st-failed', 'failed attempt'],
      ['bar st-running', 'running'], ['bar wait', 'waited while ready (no free slot)'],
      ['bar retry', 'retry delay'], ['mark', 'p50 of past runs'], ['mark p95', 'p95']]
      .forEach(function (x) {
        var s = add(div, el('span'));
        add(s, el('i', x[0]));
        s.appendChild(document.createTextNode(x[1]));
      });
  };

  Timeline.prototype.update = function () {
    var m = this.m, q = this.filter.value.toLowerCase(), st = this.status.value;
    var order = [];
    for (var i = 0; i < m.tasks.length; i++) {
      var t = m.tasks[i], id = str(t, 'id') || '';
      if (st && str(t, 'status') !== st) continue;
      if (q && id.toLowerCase().indexOf(q) < 0) continue;
      order.push(i);
    }
    var info = m.info, tasks = m.tasks, key = this.sort.value;
    function byStart(a, b) {
      var x = info[a].first, y = info[b].first;
      if (x === y) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      return x - y;
    }
    var cmp = {
      start: byStart,
      id: function (a, b) {
        var x = str(tasks[a], 'id') || '', y = str(tasks[b], 'id') || '';
        return x < y ? -1 : x > y ? 1 : a - b;
      },
      dur: function (a, b) { return (info[b].dur || 0) - (info[a].dur || 0) || a - b; },
      status: function (a, b) {
        var x = SEVERITY[str(tasks[a], 'status')], y = SEVERITY[str(tasks[b], 'status')];
        x = x === undefined ? 8 : x;
        y = y === undefined ? 8 : y;
        return x - y || byStart(a, b);
      },
      slow: function (a, b) {
        function r(i) { return info[i].p95 && info[i].dur !== null ? info[i].dur / info[i].p95 : 0; }
        return r(b) - r(a) || a - b;
      }
    }[key] || byStart;
    order.sort(cmp);
    this.order = order;
    this.virtual = order.length > VIRTUAL_OVER;
    this.view.classList.toggle('virtual', this.virtual);
    this.rows.style.height = this.virtual ? (order.length * ROW) + 'px' : '';
    this.shown.textContent = order.length === m.tasks.length ?
      m.tasks.length + ' tasks' : order.length + ' of ' + m.tasks.length + ' tasks';
    this.draw();
  };

  Timeline.prototype.draw = function () {
    var first = 0, last = this.order.length;
    if (this.virtual) {
      var top = this.view.scrollTop, h = this.view.clientHeight || 600;
      first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
      last = Math.min(last, Math.ceil((top + h) / ROW) + OVERSCAN);
    }
    clear(this.rows);
    for (var k = first; k < last; k++) {
      var row = this.row(this.order[k]);
      if (this.virtual) row.style.top = (k * ROW) + 'px';
      this.rows.appendChild(row);
    }
  };

  Timeline.prototype.row = function (i) {
    var m = this.m, t = m.tasks[i], info = m.info[i], id = str(t, 'id') || '';
    var row = el('div', 'tl-row' + (i === this.selected ? ' sel' : ''));
    row.dataset.i = i;
    row.setAttribute('data-task', id);
    var c = add(row, el('div', 'tid', id));
    c.title = id;
    add(add(row, el('div')), badge(str(t, 'status') || 'pending'));
    /* the last attempt's duration: what the history (of successful
       attempts) compares with; the bars show the wall time */
    var d = add(row, el('div', info.slow ? 'slow' : null, fmtDur(info.dur)));
    d.title = 'last attempt ' + fmtDur(info.dur) + '; from first start to last end ' +
      fmtDur(info.wall);
    if (info.p95 !== null) {
      d.textContent += ' (' + fmtDur(info.p50) + ' / ' + fmtDur(info.p95) + ')';
      d.title += '; past runs: p50 ' + fmtDur(info.p50) + ', p95 ' + fmtDur(info.p95);
    }
    var lane = add(row, el('div', 'lane'));
    var atts = Array.isArray(t.attempts) ? t.attempts : [];
    info.spans.forEach(function (s) {
      var cls = s.kind === 'attempt' ? 'bar ' + stClass(str(atts[s.k], 'status')) +
        (s.open ? ' open' : '') : 'bar ' + s.kind;
      var b = add(lane, el('div', cls));
      b.style.left = m.pct(s.s) + '%';
      b.style.width = Math.max(0, m.pct(s.e) - m.pct(s.s)) + '%';
      b.dataset.k = s.k;
      b.dataset.kind = s.kind;
    });
    var lastStart = atts.length ? num(atts[atts.length - 1], 'startMs') : null;
    if (lastStart !== null && info.p95 !== null) {
      [['mark', info.p50], ['mark p95', info.p95]].forEach(function (x) {
        if (x[1] === null) return;
        var mk = add(lane, el('div', x[0]));
        mk.style.left = Math.min(100, m.pct(lastStart + x[1])) + '%';
      });
    }
    return row;
  };

  Timeline.prototype.hover = function (e) {
    var b = e.target.closest('.bar'), tip = this.tip;
    if (!tip) return;
    if (!b) { tip.hidden = true; return; }
    var i = +b.closest('.tl-row').dataset.i, k = +b.dataset.k, kind = b.dataset.kind;
    var m = this.m, t = m.tasks[i], atts = Array.isArray(t.attempts) ? t.attempts : [];
    var a = atts[k], lines = [str(t, 'id') + ' \u00b7 attempt ' + (num(a, 'attempt') || k + 1)];
    var s = num(a, 'startMs');
    if (kind === 'wait') {
      lines.push('waited while ready: ' + fmtDur(s - num(a, 'readyMs')) +
        ' (no free slot or pool place)');
    } else if (kind === 'retry') {
      var pe = num(atts[k - 1], 'endMs'), r = num(a, 'readyMs');
      lines.push('retry delay: ' + fmtDur((r !== null && r < s ? r : s) - pe));
    } else {
      lines.push(attemptLine(a));
      lines.push('started +' + fmtDur(s - num(m.run, 'startMs')) + ', ran ' +
        fmtDur(m.endOf(a) - s) + (num(a, 'endMs') === null ? ' so far' : ''));
      if (str(a, 'error')) lines.push(str(a, 'error').slice(0, 300));
    }
    tip.textContent = lines.join('\n');
    tip.hidden = false;
    this.place(e);
  };

  Timeline.prototype.place = function (e) {
    if (!this.tip || this.tip.hidden) return;
    var x = Math.min(e.clientX + 14, window.innerWidth - this.tip.offsetWidth - 8);
    this.tip.style.left = Math.max(0, x) + 'px';
    this.tip.style.top = (e.clientY + 16) + 'px';
  };

  Timeline.prototype.setSelected = function (i, scroll) {
    this.selected = i;
    var k = this.order.indexOf(i);
    if (scroll && k >= 0) {
      if (this.virtual) this.view.scrollTop = Math.max(0, k * ROW - this.view.clientHeight / 2);
    }
    this.draw();
    if (scroll && k >= 0 && !this.virtual) {
      var row = this.rows.querySelector('.tl-row.sel');
      if (row && row.scrollIntoView) row.scrollIntoView({block: 'nearest'});
    }
  };

  function attemptLine(a) {
    var parts = [str(a, 'status') || ''];
    if (num(a, 'exitCode') !== null) parts.push('exit ' + num(a, 'exitCode'));
    if (num(a, 'signal')) parts.push(SIGNALS[num(a, 'signal')] || 'signal ' + num(a, 'signal'));
    if (a && a.timedOut === true) parts.push('timed out');
    if (a && a.cached === true) parts.push('cached');
    if (str(a, 'errorClass')) parts.push(str(a, 'errorClass'));
    var http = obj(a, 'http');
    if (num(http, 'status')) parts.push('HTTP ' + num(http, 'status'));
    return parts.join(' \u00b7 ');
  }

  /* ---- the selected task ---- */

  function kv(dl, key, value) {
    if (value === null || value === undefined || value === '') return;
    add(dl, el('dt', null, key));
    add(dl, el('dd', null, value));
  }

  function taskLink(m, i, select, suffix) {
    var a = el('span', 'tlink mono', str(m.tasks[i], 'id'));
    a.tabIndex = 0;
    a.addEventListener('click', function () { select(i, 'details'); });
    var s = el('span');
    s.appendChild(a);
    if (suffix) s.appendChild(document.createTextNode(suffix));
    return s;
  }

  function links(parent, label, items) {
    if (!items.length) return;
    var p = add(parent, el('p', 'deps'));
    add(p, el('span', 'muted', label + ': '));
    items.forEach(function (x, n) {
      if (n) p.appendChild(document.createTextNode(', '));
      p.appendChild(x);
    });
  }

  function stream(parent, label, s, cls) {
    var tail = str(s, 'tail');
    if (tail === null || tail === '') return;
    var bytes = num(s, 'bytes');
    var note = s.truncated === true && bytes !== null ?
      ' (the last ' + fmtBytes(new TextEncoder().encode(tail).length) + ' of ' + fmtBytes(bytes) + ')' : '';
    add(parent, el('div', 'muted', label + note));
    add(parent, el('pre', cls, tail));
  }

  function renderAttempt(parent, m, atts, k) {
    var a = atts[k], div = add(parent, el('div', 'attempt'));
    var h = add(div, el('h3', null, 'Attempt ' + (num(a, 'attempt') || k + 1) + ' '));
    h.appendChild(badge(str(a, 'status') || 'unknown'));
    var dl = add(div, el('dl', 'kv'));
    var s = num(a, 'startMs'), e = num(a, 'endMs'), r = num(a, 'readyMs');
    if (r !== null && s !== null) kv(dl, 'waited while ready', fmtDur(s - r));
    if (k > 0 && num(atts[k - 1], 'endMs') !== null && s !== null)
      kv(dl, 'retry delay', fmtDur((r !== null && r < s ? r : s) - num(atts[k - 1], 'endMs')));
    if (s !== null) kv(dl, 'started', fmtTime(s) + ' (+' + fmtDur(s - num(m.run, 'startMs')) + ')');
    kv(dl, 'ended', e !== null ? fmtTime(e) : 'not ended');
    kv(dl, 'duration', fmtDur(num(a, 'durationMs') !== null ? num(a, 'durationMs') :
      s !== null ? m.endOf(a) - s : null));
    kv(dl, 'exit code', num(a, 'exitCode'));
    if (num(a, 'signal')) kv(dl, 'signal', SIGNALS[num(a, 'signal')] || String(num(a, 'signal')));
    if (a.timedOut === true) kv(dl, 'timed out', 'yes');
    if (a.cached === true) kv(dl, 'cached', 'yes');
    kv(dl, 'error class', str(a, 'errorClass'));
    if (str(a, 'error')) {
      add(dl, el('dt', null, 'error'));
      add(dl, el('dd', 'err-msg', str(a, 'error')));
    }
    if (num(a, 'cpuUserMs') !== null || num(a, 'cpuSysMs') !== null)
      kv(dl, 'CPU', fmtDur(num(a, 'cpuUserMs') || 0) + ' user, ' +
        fmtDur(num(a, 'cpuSysMs') || 0) + ' system');
    if (num(a, 'maxRssKb') !== null && num(a, 'maxRssKb') > 0)
      kv(dl, 'max RSS', fmtBytes(num(a, 'maxRssKb') * 1024));
    var http = obj(a, 'http');
    if (http) {
      kv(dl, 'HTTP status', num(http, 'status') || 'no response');
      if (num(http, 'redirects')) kv(dl, 'redirects', num(http, 'redirects'));
      var tm = obj(http, 'timings');
      if (tm) {
        var parts = [['queue', 'queueUs'], ['DNS', 'dnsUs'], ['connect', 'connectUs'],
          ['TLS', 'tlsUs'], ['first byte', 'firstByteUs'], ['total', 'totalUs']]
          .filter(function (x) { return num(tm, x[1]) !== null; })
          .map(function (x) { return x[0] + ' ' + fmtUs(num(tm, x[1])); });
        kv(dl, 'HTTP timings', parts.join(', '));
      }
    }
    var ai = obj(a, 'ai');
    if (ai) {
      kv(dl, 'model', str(ai, 'model'));
      var u = obj(ai, 'usage');
      if (u) kv(dl, 'tokens', (num(u, 'promptTokens') !== null ? num(u, 'promptTokens') : '?') +
        ' prompt + ' + (num(u, 'completionTokens') !== null ? num(u, 'completionTokens') : '?') +
        ' completion');
      kv(dl, 'finish reason', str(ai, 'finishReason'));
      if (num(ai, 'promptBytes') !== null) kv(dl, 'prompt size', fmtBytes(num(ai, 'promptBytes')));
      if (num(ai, 'contextCutBytes')) kv(dl, 'context cut', fmtBytes(num(ai, 'contextCutBytes')));
    }
    stream(div, 'stdout', obj(a, 'stdout'), null);
    stream(div, 'stderr', obj(a, 'stderr'), 'err');
  }

  function renderDetails(root, m, i, select) {
    clear(root);
    var t = m.tasks[i], info = m.info[i];
    var h = add(root, el('h2'));
    add(h, el('span', 'mono', str(t, 'id'))).id = 'details-id';
    var facts = add(root, el('div', 'facts'));
    add(facts, badge(str(t, 'status') || 'pending'));
    if (str(t, 'kind')) fact(facts, 'kind', str(t, 'kind'));
    if (str(t, 'hook')) fact(facts, 'hook', str(t, 'hook'));
    if (info.wall !== null) fact(facts, 'wall time', fmtDur(info.wall));
    if (str(t, 'error')) {
      var p = add(root, el('p', 'err-msg'));
      if (str(t, 'errorClass')) add(p, el('b', null, str(t, 'errorClass') + ': '));
      p.appendChild(document.createTextNode(str(t, 'error')));
    }
    if (info.p95 !== null) {
      var hp = add(root, el('p', info.slow ? 'slow' : 'muted'));
      hp.textContent = 'Last attempt ' + fmtDur(info.dur) + '; over ' +
        (num(obj(t, 'history'), 'runs') || '?') + ' past runs p50 ' + fmtDur(info.p50) +
        ', p95 ' + fmtDur(info.p95) + (info.slow ? ': slower than p95.' : '.');
    }
    var deps = (Array.isArray(t.dependencies) ? t.dependencies : []).map(function (d) {
      var j = m.byId.get(str(d, 'taskId'));
      var suffix = (str(d, 'type') === 'non-blocking' ? ' (non-blocking)' : '') +
        (str(d, 'condition') ? ' if ' + str(d, 'condition') : '');
      return j === undefined ? el('span', 'mono', str(d, 'taskId')) : taskLink(m, j, select, suffix);
    });
    links(root, 'depends on', deps);
    links(root, 'needed by', m.dependents[i].map(function (j) { return taskLink(m, j, select); }));
    var atts = Array.isArray(t.attempts) ? t.attempts : [];
    if (!atts.length) add(root, el('p', 'muted', 'No attempt: the task never started.'));
    for (var k = atts.length - 1; k >= 0; k--) renderAttempt(root, m, atts, k);
  }

  /* ---- the graph ---- */

  function Graph(root, select) {
    this.svg = root ? root.querySelector('svg') : null;
    this.sel = null;
    if (!this.svg) return;
    this.svg.addEventListener('click', function (e) {
      var g = e.target.closest('g.node'), mt = g ? /^dagrun-node-(\d+)$/.exec(g.id) : null;
      if (mt) select(+mt[1], 'graph');
    });
  }

  Graph.prototype.setSelected = function (i, scroll) {
    if (!this.svg) return;
    if (this.sel) this.sel.classList.remove('sel');
    this.sel = document.getElementById('dagrun-node-' + i);
    if (!this.sel) return;
    this.sel.classList.add('sel');
    if (scroll && this.sel.scrollIntoView) this.sel.scrollIntoView({block: 'nearest', inline: 'nearest'});
  };

  /* ---- the page ---- */

  /* ids: the element ids of the parts (summary, failures, timeline,
     graph, details: defaults those names; a missing element is left out),
     and for a page that owns its URL (the server's UI): noHash (neither
     read nor write location.hash), select (the task index to select
     first, -1 none) and onSelect(i, from). */
  function render(doc, ids) {
    ids = ids || {};
    function part(name) { return document.getElementById(ids[name] || name); }
    var m = new Model(doc), details = part('details');
    var timeline, graph;
    function select(i, from) {
      if (!(i >= 0 && i < m.tasks.length)) return;
      /* bring the other views to the task, but never move the page on load */
      timeline.setSelected(i, from !== 'timeline' && from !== 'load');
      graph.setSelected(i, from !== 'graph' && from !== 'load');
      if (details) renderDetails(details, m, i, select);
      if (ids.onSelect) ids.onSelect(i, from);
      try {
        if (from !== 'load' && !ids.noHash) history.replaceState(null, '', '#task=' + encodeURIComponent(str(m.tasks[i], 'id')));
      } catch (err) { /* a file: URL may refuse it; the selection stands */ }
    }
    if (part('summary')) renderSummary(part('summary'), m);
    if (part('failures')) renderFailures(part('failures'), m, select);
    timeline = new Timeline(part('timeline'), m, select);
    graph = new Graph(part('graph'), select);
    var want = ids.noHash ? null : /^#task=(.*)$/.exec(location.hash || ''), start = -1;
    if (want) {
      try { start = m.byId.get(decodeURIComponent(want[1])); } catch (err) { start = -1; }
    }
    if (start === undefined || start < 0) {
      start = -1;
      for (var i = 0; i < m.tasks.length && start < 0; i++)
        if (str(m.tasks[i], 'status') === 'failed') start = i;
    }
    if (ids.select !== undefined) start = ids.select;
    if (start >= 0) select(start, 'load');
    document.body.setAttribute('data-rendered', 'true');
    return {model: m, select: select, timeline: timeline};
  }

  /* The server's UI (src/serve/ui/ui.js) draws with the same helpers. */
  window.DagrunReport = {render: render, Model: Model, fmtDur: fmtDur, fmtTime: fmtTime,
    el: el, add: add, clear: clear, badge: badge, stClass: stClass, STATUSES: STATUSES};
  var data = document.getElementById('dagrun-data');
  if (data) render(JSON.parse(data.textContent));
})();
