/* The book's script, added to every page by book/tooling/sphinx_pages.py.

   A box that scrolls sideways (a display equation, a table, a code or output block on a narrow
   screen) fades out at each edge beyond which more of it lies, so a reader sees that it goes on.
   The classes "more-right" and "more-left" say which edges; book.css draws the fade.

   A literal that wraps breaks between its words (Sphinx writes each as a span.pre), not after a
   hyphen inside one: "--|json" reads as two things. Only a word too long for a phone's column
   may still break anywhere (book.css).

   A figure's image links to itself: on a phone, where a wide figure shrinks to the column and
   its labels with it, a tap opens it at full size, to zoom into. */
(() => {
  const BOXES = ".bd-article div.math, .bd-article .MathJax_Display, .bd-article table, .bd-article pre";

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

  function linkFigureImages() {
    document.querySelectorAll(".bd-article figure > img").forEach(image => {
      const link = document.createElement("a");
      link.className = "figure-full-size";
      link.href = image.getAttribute("src");
      link.title = "Open the figure at full size";
      image.replaceWith(link);
      link.append(image);
    });
  }

  // Characters of code that fit a phone's column: set by the Sphinx extension, in one place.
  const LONGEST_WHOLE_WORD = window.bookWholeWordChars;

  function wordsKeptWhole() {
    if (!LONGEST_WHOLE_WORD) return;
    document.querySelectorAll(".bd-article code.literal > span.pre").forEach(word => {
      // A heading's letters are two or three times the size: there a word breaks where it must.
      if (word.closest("h1, h2, h3, h4, h5, h6")) return;
      if (word.textContent.length <= LONGEST_WHOLE_WORD) word.classList.add("word-whole");
    });
  }

  function start() {
    wordsKeptWhole();
    linkFigureImages();
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
