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

  // The queue's current row, moved with j and k.
  var rows = Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr[data-ticket]"));
  var current = -1;
  var pick = function (index) {
    if (rows.length === 0) {
      return;
    }
    if (current >= 0) {
      rows[current].classList.remove("current");
      rows[current].removeAttribute("aria-current");
    }
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows[current].classList.add("current");
    rows[current].setAttribute("aria-current", "true");
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
