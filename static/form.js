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
