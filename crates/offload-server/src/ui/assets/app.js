// Offload dashboard: the little behaviour forms need. No inline scripts anywhere (the pages' CSP forbids them).
(function () {
  "use strict";
  // "Select all" on the jobs table.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box && box.id === "select-all") {
      var form = box.closest("form");
      form.querySelectorAll('input[type=checkbox][name=id]').forEach(function (c) {
        c.checked = box.checked;
      });
    }
  });
  // Buttons that need a selection, or a confirmation, before their form is sent.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button") : null;
    if (!button) return;
    if (button.hasAttribute("data-needs-selection")) {
      var form = button.closest("form");
      if (!form.querySelector('input[type=checkbox][name=id]:checked')) {
        event.preventDefault();
        event.stopPropagation();
        window.alert("Select at least one job first.");
        return;
      }
    }
    var question = button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);
})();
