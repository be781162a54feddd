// The status page's countdown to the response's expiry. The page as served already says
// when the response expires and how long is left; this only keeps "left" current. It
// counts from the server's clock at render time (data-now), not the phone's, so a phone
// whose clock is wrong still shows the right time left.
(function () {
  "use strict";
  var out = document.getElementById("countdown");
  var at = document.getElementById("expires-at");
  if (!out || !at) {
    return;
  }
  var expires = Date.parse(at.getAttribute("datetime"));
  var skew = Date.now() - Number(out.getAttribute("data-now")) * 1000;
  var two = function (n) {
    return (n < 10 ? "0" : "") + n;
  };
  var timer;
  var tick = function () {
    var left = Math.max(0, Math.floor((expires - (Date.now() - skew)) / 1000));
    out.textContent =
      Math.floor(left / 3600) + ":" + two(Math.floor(left / 60) % 60) + ":" + two(left % 60);
    if (left === 0) {
      clearInterval(timer);
      var expired = document.getElementById("expired");
      if (expired) {
        expired.hidden = false;
      }
    }
  };
  tick();
  timer = setInterval(tick, 1000);
})();

// Times are served in UTC, which every reader can check; where scripts run, each is also
// said in the reader's own time, with the offset named (as the phone shows it).
(function () {
  "use strict";
  if (!window.Intl || !Intl.DateTimeFormat) {
    return;
  }
  var lang = document.documentElement.lang || undefined;
  var times = document.querySelectorAll("time[datetime]");
  Array.prototype.forEach.call(times, function (time) {
    var at = new Date(time.getAttribute("datetime"));
    if (isNaN(at.getTime())) {
      return;
    }
    var local = new Intl.DateTimeFormat(lang, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    }).format(at);
    var note = document.createElement("span");
    note.className = "local-time";
    note.textContent = " (" + local + ")";
    time.parentNode.insertBefore(note, time.nextSibling);
  });
})();
