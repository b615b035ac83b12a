// The console's own script: the sends/s chart and the new-campaign preview.
// Loaded from /ui/static (CSP: script-src 'self'); it writes text only
// (textContent), never HTML.
(function () {
  "use strict";

  // Sends per second, from the campaign page's live refreshes: each refresh
  // carries the sends (devices sent or failed, those failed unsent left
  // out: what the Sends/s figure, campaign.Report.SendRate, counts), and the
  // rate is their change over the time between two refreshes.
  function chart() {
    var el = document.getElementById("chart");
    if (!el || typeof uPlot === "undefined") return;
    var xs = [], ys = [], last = null, max = 600, minWindow = 10;
    var plot = new uPlot({
      width: Math.max(200, el.clientWidth),
      height: 220,
      series: [{ value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" }, { label: "sends/s", stroke: "#0b57d0", fill: "rgba(11,87,208,0.12)" }],
      // Whole seconds and up between the time axis's ticks: uPlot's own
      // steps go down to milliseconds, and a run's first seconds (its
      // ten-second window) read ":01.000 :01.500 :02.000 …", a label
      // every half second, crowded into each other.
      axes: [{ incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400] }, { size: 60 }],
      // From zero: uPlot's own range hugs the data, so a steady 20/s that
      // wavers between 19 and 21 filled the chart from bottom to top, a
      // stall and a surge to the eye.
      scales: {
        // Ten seconds at least, ending at the latest point, read from the
        // data: with one point (the page's second refresh) uPlot hands the
        // range a thousand days after it, and the chart ran from 2027 to
        // 2029 with a dot at its left edge. (A minute left a short
        // campaign's run squeezed into its right quarter.)
        x: { time: true, range: function (u) {
          var d = u.data[0], hi = d.length ? d[d.length - 1] : Date.now() / 1000;
          return [Math.min(d.length ? d[0] : hi, hi - minWindow), hi];
        } },
        y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } }
      },
      legend: { show: true },
      // UTC, as every other time of the console says: uPlot writes the
      // browser's local time, and an operator in Tokyo read a send at
      // 19:51 UTC as 4:51am beside "Last send 19:51:35 UTC".
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      // And written as the console writes times ("2026-12-06 16:36:50
      // UTC"): uPlot's own formats are American, 12/6/26 4:36pm.
      fmtDate: function (tpl) {
        return uPlot.fmtDate(tpl.replace("{h}{aa}", "{HH}:00").replace(/ ?\{aa\}/g, "").replace(/\{h\}/g, "{HH}")
          .replace("{M}/{D}/{YY}", "{YYYY}-{MM}-{DD}").replace("{M}/{D}", "{MM}-{DD}"));
      }
    }, [xs, ys], el);
    el.uplot = plot; // the browser tests read its scales
    function sample() {
      var s = document.getElementById("sample");
      if (!s) return;
      var sends = Number(s.dataset.sends), now = Date.now() / 1000;
      // Scheduled: no points, the chart hidden behind its note; shown,
      // sized to its now visible box, once a refresh says it started.
      if (s.dataset.state === "scheduled") { last = { sends: sends, t: now }; return; }
      var wait = document.getElementById("chart-wait");
      if (wait) {
        wait.remove();
        el.hidden = false;
        plot.setSize({ width: Math.max(200, el.clientWidth), height: 220 });
      }
      if (last && now > last.t) {
        xs.push(now);
        ys.push(Math.max(0, (sends - last.sends) / (now - last.t)));
        if (xs.length > max) { xs.shift(); ys.shift(); }
        plot.setData([xs, ys]);
      }
      last = { sends: sends, t: now };
    }
    sample();
    document.body.addEventListener("htmx:afterSettle", sample);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(200, el.clientWidth), height: 220 });
    });
  }

  // The notification as each platform will show it, and the payload shapes
  // deliver renders (DESIGN: the notification object).
  // exactJSON is JSON.parse keeping integers past Number.MAX_SAFE_INTEGER
  // (2^53 - 1 = 9007199254740991) as their text: parsed, a user id
  // 9007199254740993 in Data became the double 9007199254740992, and the
  // preview showed a payload other than the one sent (the API keeps Data's
  // text as typed). JSON.rawJSON holds the digits, and JSON.stringify
  // writes them as they are.
  function exactJSON(text) {
    if (typeof JSON.rawJSON !== "function") return JSON.parse(text);
    return JSON.parse(text, function (key, value, context) {
      if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?[0-9]+$/.test(context.source)) {
        return JSON.rawJSON(context.source);
      }
      return value;
    });
  }

  // utf8Len is the length of s in UTF-8 bytes, as Go's len counts them.
  function utf8Len(s) { return new TextEncoder().encode(s).length; }

  // sha256Hex is the SHA-256 digest of s's UTF-8 bytes in hex (FIPS 180-4),
  // here and synchronous: crypto.subtle is only there on HTTPS or
  // localhost, and it answers with a promise, after the preview is drawn.
  function sha256Hex(s) {
    var K = [], H = [], i, j;
    function frac(x) { return ((x - Math.floor(x)) * 0x100000000) | 0; }
    for (var n = 2, found = 0; found < 64; n++) {
      for (j = 2; j * j <= n && n % j; j++);
      if (j * j > n) {
        if (found < 8) H[found] = frac(Math.pow(n, 1 / 2));
        K[found++] = frac(Math.pow(n, 1 / 3));
      }
    }
    var bytes = Array.from(new TextEncoder().encode(s)), bits = bytes.length * 8;
    bytes.push(0x80);
    while (bytes.length % 64 !== 56) bytes.push(0);
    for (i = 7; i >= 0; i--) bytes.push(i >= 4 ? 0 : (bits >>> (i * 8)) & 0xff);
    function rotr(x, r) { return (x >>> r) | (x << (32 - r)); }
    var w = new Array(64);
    for (i = 0; i < bytes.length; i += 64) {
      for (j = 0; j < 16; j++) w[j] = (bytes[i + 4 * j] << 24) | (bytes[i + 4 * j + 1] << 16) | (bytes[i + 4 * j + 2] << 8) | bytes[i + 4 * j + 3];
      for (j = 16; j < 64; j++) {
        var s0 = rotr(w[j - 15], 7) ^ rotr(w[j - 15], 18) ^ (w[j - 15] >>> 3), s1 = rotr(w[j - 2], 17) ^ rotr(w[j - 2], 19) ^ (w[j - 2] >>> 10);
        w[j] = (w[j - 16] + s0 + w[j - 7] + s1) | 0;
      }
      var a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
      for (j = 0; j < 64; j++) {
        var t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[j] + w[j]) | 0,
          t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      H = [H[0] + a, H[1] + b, H[2] + c, H[3] + d, H[4] + e, H[5] + f, H[6] + g, H[7] + h].map(function (x) { return x | 0; });
    }
    return H.map(function (x) { return ("0000000" + (x >>> 0).toString(16)).slice(-8); }).join("");
  }

  function preview() {
    var form = document.getElementById("new-campaign");
    if (!form) return;
    function val(name) { return (form.elements[name] && form.elements[name].value) || ""; }
    function set(key, text) {
      document.querySelectorAll('[data-preview="' + key + '"]').forEach(function (e) { e.textContent = text; });
    }
    function update() {
      var title = val("title"), body = val("body"), data = {};
      try { data = val("data").trim() ? exactJSON(val("data")) : {}; } catch (e) { data = { "(invalid JSON)": val("data") }; }
      // null, a number, a string or an array parse but are no object of
      // keys (the API refuses them); Object.keys(null) threw, and the
      // preview stopped following the form.
      if (data === null || typeof data !== "object" || Array.isArray(data) || (JSON.isRawJSON && JSON.isRawJSON(data))) data = { "(not a JSON object)": val("data") };
      var subtitle = val("subtitle"), image = val("image").trim(), sound = val("sound").trim(),
        badge = val("badge").trim(), thread = val("thread_id").trim(), collapse = val("collapse_id").trim(),
        silent = !!(form.elements["silent"] && form.elements["silent"].checked),
        high = !!form.querySelector('input[name="priority"][value="high"]:checked');
      set("app", val("app") || "app");
      set("title", silent ? "" : title);
      set("subtitle", silent ? "" : subtitle);
      set("body", silent ? "(silent: nothing is shown; the app gets the data)" : body);
      // A silent push is aps.content-available alone; a shown one has
      // its alert, badge, sound and, with an image, mutable-content and
      // the custom key "image" (stages/deliver/apns render). What is left
      // empty is left out, as the renderers leave it (omitempty): the
      // preview showed "title": "" for a body alone, a payload other
      // than the one sent.
      var alert = {};
      if (title) alert.title = title;
      if (subtitle) alert.subtitle = subtitle;
      if (body) alert.body = body;
      var aps = silent ? { "content-available": 1 } : { alert: alert };
      if (!silent && /^-?[0-9]+$/.test(badge)) aps.badge = Number(badge);
      if (!silent && sound) aps.sound = sound;
      if (!silent && image) aps["mutable-content"] = 1;
      // The campaign's category is the APNs category too (push.Content
      // Render), silent or not.
      var category = val("category").trim();
      if (category) aps.category = category;
      if (thread) aps["thread-id"] = thread;
      var apns = { aps: aps };
      if (!silent && image) apns.image = image;
      Object.keys(data).forEach(function (k) { apns[k] = data[k]; });
      // FCM's data values are strings (push DataStrings): a string as it
      // is, null as "", anything else as its JSON text.
      var strData = {};
      Object.keys(data).forEach(function (k) { strData[k] = typeof data[k] === "string" ? data[k] : data[k] === null ? "" : JSON.stringify(data[k]); });
      // The collapse id left empty is the campaign's id (push.Content
      // Render), the form's own key when Id is empty, and an id longer than
      // APNs's 64 bytes goes as its SHA-256 digest (push.CollapseID): the
      // preview showed no collapse key at all for one, and the phone saw
      // a digest it was never told of. A collapse id typed that long is
      // refused, as the API refuses it: said here as it is typed.
      var id = val("id").trim() || val("key"), collapseNote = "";
      if (!collapse) {
        collapse = utf8Len(id) <= 64 ? id : sha256Hex(id);
        if (collapse !== id) collapseNote = "The collapse id is the campaign id's SHA-256 digest: APNs takes at most 64 bytes, and the id is " + utf8Len(id) + ".";
      } else if (utf8Len(collapse) > 64) {
        collapseNote = "Collapse id: must be at most 64 bytes (APNs's limit); this one is " + utf8Len(collapse) + ", and the campaign would be refused.";
      }
      set("collapse", collapseNote);
      // The android block as the firebase SDK writes it (stages/deliver/fcm
      // message): its priority "high" or "normal" in lower case (it showed
      // "HIGH"), the TTL in seconds as "3600s" (what is left of it at each
      // send: all of it at the first), the collapse key.
      var android = { collapse_key: collapse, priority: high ? "high" : "normal" };
      var ttl = val("ttl_seconds").trim();
      if (!ttl) ttl = "86400";
      if (/^[0-9]+$/.test(ttl)) android.ttl = String(Number(ttl)) + "s";
      var message = {};
      if (Object.keys(strData).length) message.data = strData;
      if (!silent) {
        var note = {};
        if (title) note.title = title;
        if (body) note.body = body;
        if (image) note.image = image;
        message.notification = note;
        var shown = {};
        if (collapse) shown.tag = collapse;
        if (sound) shown.sound = sound;
        if (aps.badge !== undefined) shown.notification_count = aps.badge;
        if (Object.keys(shown).length) android.notification = shown;
      }
      message.android = android;
      // The preview is the default text; devices of a language in
      // "localized" get theirs (deliver picks by tag, then language).
      var langs = [];
      try {
        var loc = val("localized").trim() ? JSON.parse(val("localized")) : {};
        if (loc && typeof loc === "object" && !Array.isArray(loc)) langs = Object.keys(loc);
      } catch (e) { langs = []; }
      set("languages", langs.length ? "The default text. Devices in " + langs.join(", ") + " get their own." : "");
      set("apns", JSON.stringify(apns, null, 2));
      set("fcm", JSON.stringify({ message: message }, null, 2));
    }
    form.addEventListener("input", update);
    update();
  }

  // Picking a send time chooses "at": the radio beside it was easy to
  // miss, and the time was then refused (or, before, ignored: sent now).
  // Choosing "now" afterwards is still the operator's to do.
  function schedule() {
    var form = document.getElementById("new-campaign");
    if (!form || !form.elements["send_at"]) return;
    var at = form.elements["send_at"], later = form.querySelector('input[name="when"][value="later"]');
    at.addEventListener("input", function () { if (at.value && later) later.checked = true; });
    // The time typed, in UTC, said in the browser's zone as it is typed:
    // the field is UTC (as every time of the console), and a launch meant
    // for 09:00 in Seoul typed as 09:00 went out at 18:00 there. It reads
    // what the server reads (parseSendAt): the console's way of writing a
    // time, with or without seconds and " UTC", or with a "T".
    var local = document.getElementById("send-at-local");
    if (!local) return;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    function hint() {
      var m = /^\s*(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d))?\s*(?:UTC)?\s*$/.exec(at.value), t;
      if (m) {
        t = new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)));
        // 2026-02-30 rolls over to March: no such time, as Go says.
        if (t.getUTCMonth() !== m[2] - 1 || t.getUTCDate() !== +m[3] || t.getUTCHours() !== +m[4] || t.getUTCMinutes() !== +m[5]) m = null;
      }
      if (!m) {
        local.textContent = at.value.trim() ? "Not a time yet: YYYY-MM-DD HH:MM, in UTC." : "";
        return;
      }
      var off = -t.getTimezoneOffset(), zone = "";
      try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
      var sign = off < 0 ? "-" : "+", abs = Math.abs(off);
      var mins = Math.round((t.getTime() - Date.now()) / 60000), when;
      if (mins <= 0) when = "already past: the form refuses it";
      else if (mins < 60) when = "in " + mins + " min";
      else if (mins < 48 * 60) when = "in " + Math.floor(mins / 60) + " h " + (mins % 60) + " min";
      else when = "in " + Math.round(mins / (24 * 60)) + " days";
      local.textContent = "That is " + t.getFullYear() + "-" + two(t.getMonth() + 1) + "-" + two(t.getDate()) + " " + two(t.getHours()) + ":" + two(t.getMinutes()) +
        " your time (" + (zone ? zone + ", " : "") + "UTC" + sign + two(Math.floor(abs / 60)) + ":" + two(abs % 60) + "), " + when + ".";
    }
    at.addEventListener("input", hint);
    hint(); // a refused form's time, as the server kept it
  }

  // The channels field as tags: a datalist suggests for the field's whole
  // value, so past "breaking-news, " the browser matched nothing and the
  // second channel was typed blind. The field becomes a picker of one
  // channel: a pick from the list, a comma or Enter adds it to the tags
  // (each with its subscribers, from the suggestions) and empties the
  // field for the next one. The tags are posted as the comma list the
  // field was, under its name (a hidden field), so the server reads the
  // same form with script or without.
  function channelTags() {
    var field = document.getElementById("channels"), tags = document.getElementById("channel-chips");
    if (!field || !tags || !field.form) return;
    var chosen = [], list = document.createElement("input");
    list.type = "hidden";
    list.name = field.name;
    field.removeAttribute("name");
    field.parentNode.insertBefore(list, field);
    field.placeholder = "breaking-news";
    var hint = document.getElementById("channels-hint");
    if (hint) hint.textContent = "(pick or type one, then Enter or a comma; as many as you like)";
    function add(text) {
      text.split(",").forEach(function (c) {
        c = c.trim();
        if (c && chosen.indexOf(c) < 0) chosen.push(c);
      });
      draw();
    }
    // What the suggestions say of a channel: its subscribers, "none" when
    // they list every channel and not this one (a typo, or an audience not
    // imported yet, which the server refuses on Create), else nothing.
    function subscribers(c) {
      var names = document.getElementById("channel-names");
      if (!names || !names.dataset.state) return null;
      var found = null;
      names.querySelectorAll("option").forEach(function (o) { if (o.value === c) found = o.dataset.subscribers; });
      if (found !== null) return found + " subscribers";
      return names.dataset.state === "all" ? "none" : null;
    }
    function draw() {
      list.value = chosen.join(", ");
      // Required while nothing is chosen: a required picker left empty
      // after a pick would refuse a complete form.
      field.required = chosen.length === 0;
      tags.hidden = chosen.length === 0;
      tags.replaceChildren.apply(tags, chosen.map(function (c) {
        var li = document.createElement("li"), name = document.createElement("span"), x = document.createElement("button");
        li.dataset.channel = c;
        name.textContent = c;
        li.append(name);
        var n = subscribers(c);
        if (n !== null) {
          var count = document.createElement("span");
          count.className = n === "none" ? "count none" : "count";
          count.textContent = n === "none" ? "no subscribers" : n;
          li.append(" ", count);
        }
        x.type = "button";
        x.textContent = "×";
        x.setAttribute("aria-label", "Remove " + c);
        x.addEventListener("click", function () {
          chosen = chosen.filter(function (o) { return o !== c; });
          draw();
          field.focus();
        });
        li.append(" ", x);
        return li;
      }));
    }
    field.addEventListener("input", function (e) {
      var v = field.value, i = v.lastIndexOf(",");
      if (i >= 0) {
        add(v.slice(0, i));
        field.value = v.slice(i + 1).trimStart();
        return;
      }
      // A pick from the list is an input with no typing in it
      // (insertReplacementText in Chromium, a plain Event elsewhere).
      if (e.inputType && e.inputType !== "insertReplacementText") return;
      var names = document.getElementById("channel-names");
      var picked = names && [].some.call(names.querySelectorAll("option"), function (o) { return o.value === v.trim(); });
      if (picked) {
        add(v);
        field.value = "";
      }
    });
    field.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && field.value.trim()) {
        e.preventDefault(); // adds the channel; the form is sent by Enter on an empty picker, or Create
        add(field.value);
        field.value = "";
      } else if (e.key === "Backspace" && !field.value && chosen.length) {
        chosen.pop();
        draw();
      }
    });
    // A channel typed and not yet added is meant too. The submit event
    // comes before the form's data is read.
    field.form.addEventListener("submit", function () {
      if (field.value.trim()) {
        add(field.value);
        field.value = "";
      }
    });
    // The subscribers arrive after the form (the datalist's load).
    document.body.addEventListener("htmx:afterSettle", function (e) {
      if (e.target && e.target.id === "channel-names") draw();
    });
    add(field.value); // a refused form's channels, as the server kept them
    field.value = "";
  }

  // The pipeline page folds each lane's partition table, open by itself
  // while its stage is not running or stuck. Its refreshes replace the
  // page's HTML every second, which put every table back as the server
  // rendered it: one the operator opened closed again under the reading
  // eye. What the operator opened or closed is kept here, by table, and
  // put back after each refresh; a table never touched follows the server.
  function folds() {
    var live = document.getElementById("live");
    if (!live) return;
    var chosen = {};
    live.addEventListener("click", function (e) {
      var s = e.target.closest && e.target.closest("details[data-fold] > summary");
      if (s) chosen[s.parentElement.dataset.fold] = !s.parentElement.open; // clicked: about to toggle
    });
    document.body.addEventListener("htmx:afterSwap", function () {
      live.querySelectorAll("details[data-fold]").forEach(function (d) {
        var want = chosen[d.dataset.fold];
        if (want !== undefined) d.open = want;
      });
    });
  }

  // A question asked in place (the list's row cancel) is taken back by its
  // "No" button: data-dismiss names the region it empties. The focus goes
  // back to what data-back names (the row's own Cancel), where the operator was.
  function dismiss() {
    document.addEventListener("click", function (e) {
      var b = e.target.closest && e.target.closest("[data-dismiss]");
      if (!b) return;
      var region = document.getElementById(b.dataset.dismiss);
      if (!region) return;
      var back = b.dataset.back && document.getElementById(b.dataset.back);
      region.textContent = "";
      if (back) back.focus();
    });
  }

  // A list row's Cancel asks in place: its click, taken here, gets the
  // question into the region data-ask names (#row-action), as htmx's
  // hx-get did. One handler on the document, there before any row: the
  // rows are swapped at every refresh, htmx wires a swapped-in link only
  // at the swap's settle (20 ms on), and a click in between followed the
  // plain link to the cancel page. A click that opens a tab or a window
  // (a modifier, the middle button) is the browser's.
  function ask() {
    document.addEventListener("click", function (e) {
      var a = e.target.closest && e.target.closest("a[data-ask]");
      if (!a || e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      var region = document.getElementById(a.dataset.ask);
      if (!region || typeof htmx === "undefined") return;
      e.preventDefault();
      htmx.ajax("GET", a.getAttribute("href"), { source: a, target: region, swap: "innerHTML" });
    });
  }

  function start() { chart(); preview(); schedule(); channelTags(); folds(); dismiss(); ask(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
