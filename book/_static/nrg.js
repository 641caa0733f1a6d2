/* nrg: mark figures much wider than tall (multi-panel), so that on a phone they keep a legible
   size and scroll sideways in their own box instead of shrinking their text to a few pixels. */
(function () {
  function mark(img) {
    if (!img.naturalWidth || !img.naturalHeight) return;
    if (img.naturalWidth / img.naturalHeight > 1.9) {
      img.classList.add("nrg-wide");
      if (img.parentElement && !img.parentElement.classList.contains("nrg-scroll")) {
        var box = document.createElement("div");          /* the figure's own scrolling box */
        box.className = "nrg-scroll";
        img.parentElement.insertBefore(box, img);
        box.appendChild(img);
      }
    }
  }
  function run() {
    document.querySelectorAll(".cell_output img").forEach(function (img) {
      if (img.complete) mark(img); else img.addEventListener("load", function () { mark(img); });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run); else run();
})();
