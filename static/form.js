// The request form's export section takes a file dropped on it, or a picture pasted into
// it (a screenshot of the device's QR code), as well as the three fields it always has.
// Each goes into the field it belongs to, and the page says where it went. Without
// scripts the three fields still work on their own.
(function () {
  "use strict";
  var zone = document.getElementById("export-zone");
  var note = document.getElementById("export-dropped");
  if (!zone || !note || typeof DataTransfer === "undefined") {
    return;
  }
  var xml = document.getElementById("export_xml");
  var qr = document.getElementById("export_qr");
  var typed = document.getElementById("reset_string");

  var place = function (file) {
    var isXml = /\.xml$/i.test(file.name) || /xml/.test(file.type);
    var isPicture = /^image\/(png|jpeg)$/.test(file.type);
    var field = isXml ? xml : isPicture ? qr : null;
    if (!field) {
      note.textContent = note.getAttribute("data-unknown");
      return;
    }
    var files = new DataTransfer();
    files.items.add(file);
    field.files = files.files;
    note.textContent = note.getAttribute(isXml ? "data-xml" : "data-qr").replace("{name}", file.name);
  };

  zone.classList.add("droppable");
  zone.addEventListener("dragover", function (event) {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", function () {
    zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("dragging");
    var data = event.dataTransfer;
    if (data.files && data.files.length > 0) {
      place(data.files[0]);
    } else if (data.getData("text")) {
      typed.value = data.getData("text").trim();
      note.textContent = note.getAttribute("data-text");
    }
  });
  zone.addEventListener("paste", function (event) {
    var items = event.clipboardData ? event.clipboardData.files : null;
    if (items && items.length > 0) {
      event.preventDefault();
      place(items[0]);
    }
  });
})();

// The country list holds every country: where scripts run, a box above it narrows the
// list to the names (or codes) holding what is typed, accents aside, and picks the first
// when the chosen one is filtered out. Without scripts the list is an ordinary select,
// which takes typed first letters.
(function () {
  "use strict";
  var select = document.getElementById("country");
  if (!select || !select.getAttribute("data-find-label")) {
    return;
  }
  var plain = function (text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  };
  var label = document.createElement("label");
  label.setAttribute("for", "country-find");
  label.className = "hint";
  label.textContent = select.getAttribute("data-find-label");
  var box = document.createElement("input");
  box.type = "search";
  box.id = "country-find";
  box.autocomplete = "off";
  box.setAttribute("aria-controls", "country");
  select.parentNode.insertBefore(label, select);
  select.parentNode.insertBefore(box, select);
  var options = Array.prototype.slice.call(select.options, 1);
  box.addEventListener("input", function () {
    var typed = plain(box.value.trim());
    var first = null;
    options.forEach(function (option) {
      var shown = typed === "" || plain(option.text).indexOf(typed) !== -1 || option.value.toLowerCase() === typed;
      option.hidden = !shown;
      if (shown && first === null) {
        first = option;
      }
    });
    var chosen = select.options[select.selectedIndex];
    if (typed !== "" && first && (!chosen || chosen.hidden || chosen.value === "")) {
      select.value = first.value;
    }
  });
})();

// A file over its field's limit is said next to the field as soon as it is chosen, and
// the form is not sent with it: a phone on a slow network does not upload 30 MB to hear
// that 20 fit. Without scripts the desk says the same, keeping what was typed.
(function () {
  "use strict";
  var form = document.querySelector("form[enctype='multipart/form-data']");
  if (!form || !window.File) {
    return;
  }
  var inputs = Array.prototype.slice.call(form.querySelectorAll("input[type=file][data-max-bytes]"));
  var check = function (input) {
    var max = parseInt(input.getAttribute("data-max-bytes"), 10);
    var file = input.files && input.files[0];
    var note = document.getElementById(input.id + "-size");
    var over = Boolean(file && max > 0 && file.size > max);
    if (over && !note) {
      note = document.createElement("p");
      note.className = "error";
      note.id = input.id + "-size";
      note.textContent = input.getAttribute("data-too-large");
      input.parentNode.insertBefore(note, input);
      var described = input.getAttribute("aria-describedby") || "";
      input.setAttribute("aria-describedby", (described + " " + note.id).trim());
    } else if (!over && note) {
      note.parentNode.removeChild(note);
      input.setAttribute("aria-describedby", (input.getAttribute("aria-describedby") || "").replace(input.id + "-size", "").trim());
    }
    if (over) {
      input.setAttribute("aria-invalid", "true");
    } else if (!document.getElementById(input.id + "-error")) {
      input.removeAttribute("aria-invalid");
    }
    return over;
  };
  inputs.forEach(function (input) {
    input.addEventListener("change", function () {
      check(input);
    });
  });
  form.addEventListener("submit", function (event) {
    var first = null;
    inputs.forEach(function (input) {
      if (check(input) && !first) {
        first = input;
      }
    });
    if (first) {
      event.preventDefault();
      first.focus();
    }
  });
})();
