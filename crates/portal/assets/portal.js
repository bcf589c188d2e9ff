// Shows every <time datetime="..."> in the browser's own time zone (the server renders UTC).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d.getTime())) {
      el.title = el.textContent;
      el.textContent = fmt.format(d);
    }
  });
});
