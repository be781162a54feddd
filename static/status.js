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
