/* The book's script, added to every page by book/tooling/sphinx_pages.py.

   A box that scrolls sideways (a display equation, a table, a code or output block on a narrow
   screen) fades out at each edge beyond which more of it lies, so a reader sees that it goes on.
   The classes "more-right" and "more-left" say which edges; book.css draws the fade.

   A figure's image sits in a box of its own (.figure-image), so that on a phone it can keep a
   width at which its labels still read (book.css, from the image's own width in --natural-width)
   and scroll inside that box, while the caption below keeps the column's width. */
(() => {
  const BOXES = ".bd-article div.math, .bd-article .MathJax_Display, .bd-article table, .bd-article pre, "
    + ".bd-article .figure-image";

  function mark(box) {
    const hidden = box.scrollWidth - box.clientWidth;
    box.classList.toggle("more-right", hidden > 1 && box.scrollLeft < hidden - 1);
    box.classList.toggle("more-left", hidden > 1 && box.scrollLeft > 1);
  }

  // A box's size changes with the window, and an equation's once MathJax has set it; MathJax then
  // adds a box of its own, so any change looks at every box again, new ones included.
  const resized = new ResizeObserver(() => markAll());
  const watched = new WeakSet();

  function markAll() {
    document.querySelectorAll(BOXES).forEach(box => {
      if (!watched.has(box)) {
        watched.add(box);
        resized.observe(box);
      }
      mark(box);
    });
  }

  function boxFigureImages() {
    document.querySelectorAll(".bd-article figure > img").forEach(image => {
      const box = document.createElement("div");
      box.className = "figure-image";
      image.replaceWith(box);
      box.append(image);
      const natural = () => image.style.setProperty("--natural-width", `${image.naturalWidth}px`);
      if (image.complete) natural();
      else image.addEventListener("load", natural);
    });
  }

  function start() {
    boxFigureImages();
    markAll();
    document.addEventListener("scroll", event => {
      if (event.target instanceof Element && event.target.matches(BOXES)) mark(event.target);
    }, true);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  window.addEventListener("load", () => {
    markAll();
    if (window.MathJax && MathJax.Hub) MathJax.Hub.Queue(markAll);
  });
})();
