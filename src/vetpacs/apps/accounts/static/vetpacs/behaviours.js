// Page behaviours that used to be inline handlers (onclick, onchange, onsubmit), so the CSP can refuse
// every inline script without this page's nonce (apps/accounts/middleware.py, R-7.3.4.2).
//   <button data-confirm="...">, <form data-confirm="...">  ask before acting
//   <select data-autosubmit>                                 submit its form on change
//   <button data-toggle="ID">                                toggle class "on" of element ID
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-confirm]:not(form)");
    if (el && !window.confirm(el.dataset.confirm)) { ev.preventDefault(); ev.stopImmediatePropagation(); return; }
    var toggler = ev.target.closest("[data-toggle]");
    if (toggler) {
      var target = document.getElementById(toggler.dataset.toggle);
      if (target) target.classList.toggle("on");
    }
  }, true);
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.matches("form[data-confirm]") && !window.confirm(form.dataset.confirm)) ev.preventDefault();
  }, true);
  document.addEventListener("change", function (ev) {
    var select = ev.target.closest("select[data-autosubmit]");
    if (select && select.form) select.form.submit();
  });
})();
