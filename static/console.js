// The console's keyboard: an agent working the queue all day decides a clean ticket with
// two keys (a, Enter) and moves on without the mouse. Each key only picks a control
// (focus) or follows a link the page already has; what submits is the control itself, so
// the keys do nothing a click could not. Without scripts every control still works, and
// the key hints stay hidden.
(function () {
  "use strict";
  var byId = function (id) {
    return document.getElementById(id);
  };
  var help = byId("shortcuts");
  var hint = byId("shortcuts-hint");
  if (hint) {
    hint.hidden = false;
  }

  // A decision is sent once: a second press while the first is on its way (a double
  // click, a held Enter) would only come back as "not open any more". A page the browser
  // brings back from its history (Back) may send again.
  var decisionForms = document.querySelectorAll(".decision form");
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      Array.prototype.forEach.call(decisionForms, function (form) {
        form.removeAttribute("data-sent");
      });
    }
  });
  Array.prototype.forEach.call(decisionForms, function (form) {
    form.addEventListener("submit", function (event) {
      if (event.defaultPrevented) {
        return;
      }
      if (form.getAttribute("data-sent") === "yes") {
        event.preventDefault();
        return;
      }
      form.setAttribute("data-sent", "yes");
    });
  });

  // Reject asks once more before it tells the customer: the first press of the button
  // (or Enter in its form) arms it, a second one sends, and only a deliberate one: not
  // within half a second, when it would be the same key held or bounced.
  var rejectForm = byId("reject-form");
  var rejectButton = byId("reject");
  var rejectSaid = byId("reject-said");
  if (rejectForm && rejectButton) {
    var plain = rejectButton.textContent;
    var armedAt = 0;
    var disarm = function () {
      armedAt = 0;
      rejectButton.textContent = plain;
      if (rejectSaid) {
        rejectSaid.textContent = "";
      }
    };
    // A capture listener on the form itself runs before the send-once guard above, so
    // an unconfirmed press is not counted as sent.
    rejectForm.addEventListener("submit", function (event) {
      if (armedAt > 0 && Date.now() - armedAt >= 500) {
        return;
      }
      event.preventDefault();
      event.stopImmediatePropagation();
      if (armedAt === 0) {
        armedAt = Date.now();
        rejectButton.textContent = rejectButton.getAttribute("data-confirm");
        if (rejectSaid) {
          rejectSaid.textContent = rejectButton.getAttribute("data-confirm") + ": nothing is sent yet.";
        }
        rejectButton.focus();
      }
    }, true);
    rejectForm.addEventListener("input", disarm);
  }

  // The queue's current row, moved with j and k; remembered by its ticket number, so a
  // refresh of the list keeps it.
  var queueRows = function () {
    return Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr[data-ticket]"));
  };
  var rows = queueRows();
  var current = -1;
  var currentTicket = null;
  var mark = function (row, on) {
    row.classList.toggle("current", on);
    if (on) {
      row.setAttribute("aria-current", "true");
    } else {
      row.removeAttribute("aria-current");
    }
  };
  var pick = function (index) {
    if (rows.length === 0) {
      return;
    }
    if (current >= 0 && rows[current]) {
      mark(rows[current], false);
    }
    current = Math.max(0, Math.min(rows.length - 1, index));
    currentTicket = rows[current].getAttribute("data-ticket");
    mark(rows[current], true);
    var link = rows[current].querySelector("a");
    if (link) {
      link.focus();
    }
  };

  var search = function () {
    var box = byId("q");
    if (box) {
      box.focus();
      box.select();
    } else {
      window.location.href = "/console#search";
    }
  };
  if (window.location.hash === "#search") {
    search();
  }

  // Where a key is text, not a shortcut: a field that takes typing. A checkbox or a
  // button with focus (the zoomed photo, a pressed button) keeps the shortcuts working.
  var typing = function (element) {
    if (!element) {
      return false;
    }
    var tag = element.tagName;
    if (tag === "INPUT") {
      return !/^(checkbox|radio|button|submit|reset|image|file|range|color)$/.test(element.type);
    }
    return tag === "TEXTAREA" || tag === "SELECT" || element.isContentEditable;
  };
  // The queue refreshes itself every data-refresh-secs, keeping the agent's place: the
  // list and the counts are replaced in the page (no reload, so the scroll stays), the
  // current row stays current by its ticket number and keeps the focus if it had it.
  // Nothing is replaced while the agent types or the page is hidden, and refreshing
  // stops after ten minutes without a key or the mouse, so an unattended console still
  // reaches the session's idle end.
  var table = byId("queue");
  var refreshSecs = table ? parseInt(table.getAttribute("data-refresh-secs"), 10) : 0;
  var refreshSaid = byId("queue-refresh");
  // A page that refused its search (400) shows no list to keep current.
  if (refreshSecs > 0 && refreshSaid && !byId("search-error") && window.fetch && window.DOMParser) {
    var lastActive = Date.now();
    var idleLimit = 10 * 60 * 1000;
    var stopped = false;
    var say = function (words) {
      refreshSaid.textContent = words;
      refreshSaid.hidden = false;
    };
    var clock = function () {
      return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    };
    var refreshNow = function () {
      var tbody = table.querySelector("tbody");
      var hadFocus = tbody && tbody.contains(document.activeElement);
      return window.fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (answer) {
          if (!answer.ok) {
            throw new Error("status " + answer.status);
          }
          return answer.text();
        })
        .then(function (html) {
          var fresh = new window.DOMParser().parseFromString(html, "text/html");
          var freshBody = fresh.querySelector("#queue tbody");
          if (!freshBody) {
            // Signed out meanwhile: the answer is the sign-in page.
            say("Not refreshed: you are signed out. Reload the page to sign in again.");
            return false;
          }
          tbody.parentNode.replaceChild(document.importNode(freshBody, true), tbody);
          var counts = byId("status-counts");
          var freshCounts = fresh.getElementById("status-counts");
          if (counts && freshCounts) {
            counts.parentNode.replaceChild(document.importNode(freshCounts, true), counts);
          }
          rows = queueRows();
          current = -1;
          for (var i = 0; i < rows.length; i++) {
            if (rows[i].getAttribute("data-ticket") === currentTicket) {
              current = i;
              mark(rows[i], true);
              var link = rows[i].querySelector("a");
              if (hadFocus && link) {
                link.focus();
              }
            }
          }
          say("Updated at " + clock() + ".");
          return true;
        })
        .catch(function () {
          say("Not refreshed at " + clock() + ": the desk did not answer. Trying again.");
          return true;
        });
    };
    var tick = function () {
      if (Date.now() - lastActive > idleLimit) {
        stopped = true;
        say("Refreshing paused after ten minutes without a key or the mouse: press a key or move the mouse to go on.");
        return;
      }
      if (document.hidden || typing(document.activeElement)) {
        window.setTimeout(tick, refreshSecs * 1000);
        return;
      }
      refreshNow().then(function (goOn) {
        if (goOn) {
          window.setTimeout(tick, refreshSecs * 1000);
        }
      });
    };
    var active = function () {
      lastActive = Date.now();
      if (stopped) {
        stopped = false;
        tick();
      }
    };
    ["keydown", "mousemove", "mousedown", "touchstart", "scroll"].forEach(function (kind) {
      window.addEventListener(kind, active, { passive: true });
    });
    say("Refreshes every " + refreshSecs + " seconds.");
    window.setTimeout(tick, refreshSecs * 1000);
  }

  // The shortcuts belong to the pages that list them (the queue, a ticket): elsewhere a
  // stray key must not leave a page that shows something once (a new token, recovery
  // codes).
  if (!help) {
    return;
  }

  var focusControl = function (id) {
    var control = byId(id);
    if (control) {
      control.focus();
      return true;
    }
    return false;
  };

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    if (event.key === "Escape") {
      var zoom = byId("zoom");
      if (!help.hidden) {
        help.hidden = true;
      } else if (zoom && zoom.checked) {
        zoom.checked = false;
      } else if (typing(document.activeElement)) {
        document.activeElement.blur();
      }
      return;
    }
    if (typing(event.target)) {
      return;
    }
    var handled = true;
    switch (event.key) {
      case "?":
        help.hidden = !help.hidden;
        break;
      case "/":
        search();
        break;
      case "j":
        if (rows.length > 0) {
          pick(current + 1);
        } else if (byId("next-ticket")) {
          byId("next-ticket").click();
        }
        break;
      case "k":
        if (rows.length > 0) {
          pick(current - 1);
        } else {
          window.history.back();
        }
        break;
      case "a":
        handled = focusControl("approve-next") || focusControl("approve");
        break;
      case "r":
        handled = focusControl("canned");
        break;
      case "p":
        handled = focusControl("note");
        break;
      default:
        handled = false;
    }
    if (handled) {
      event.preventDefault();
    }
  });
})();

// Copy and download for what is shown once (a new API token, the recovery codes): the
// text of the element named by data-copy, one line per item, copied to the clipboard or
// saved as data-file. The page shows the text either way; these only save retyping it.
(function () {
  "use strict";
  var blocks = document.querySelectorAll(".copy-actions[data-copy]");
  Array.prototype.forEach.call(blocks, function (block) {
    var source = document.getElementById(block.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var said = block.querySelector(".copy-said");
    var text = function () {
      var items = source.querySelectorAll("li");
      var lines = items.length > 0
        ? Array.prototype.map.call(items, function (item) { return item.textContent.trim(); })
        : [source.textContent.trim()];
      return lines.join("\n") + "\n";
    };
    var say = function (words) {
      if (said) {
        said.textContent = words;
      }
    };
    block.hidden = false;
    block.addEventListener("click", function (event) {
      var action = event.target.getAttribute && event.target.getAttribute("data-action");
      if (action === "copy") {
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text()).then(
            function () { say("Copied."); },
            function () { say("Not copied: select the text and copy it."); }
          );
        } else {
          say("Not copied here (the page is not on HTTPS): select the text and copy it.");
        }
      } else if (action === "download") {
        var link = document.createElement("a");
        link.href = URL.createObjectURL(new Blob([text()], { type: "text/plain" }));
        link.download = block.getAttribute("data-file");
        link.hidden = true;
        document.body.appendChild(link);
        link.click();
        say("Saved as " + link.download + ".");
        // Left a while for the browser to save it from.
        window.setTimeout(function () {
          URL.revokeObjectURL(link.href);
          link.remove();
        }, 10000);
      }
    });
  });
})();
