// MathJax 3 settings for pymdownx.arithmatex in "generic" mode. Arithmatex wraps every
// formula in an element of class "arithmatex" using \( \) for inline and \[ \] for display
// math, so MathJax is told to look only there (code blocks and prose are left alone).
// This file must load before tex-chtml.js, which reads window.MathJax when it starts.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// Material's document$ emits for every page shown, including pages swapped in without a
// reload when instant navigation is on; typeset those. On the first load MathJax is not
// started yet (typesetPromise is missing) and its own start-up typesets the page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax.typesetPromise) {
      window.MathJax.startup.output.clearCache();
      window.MathJax.typesetClear();
      window.MathJax.texReset();
      window.MathJax.typesetPromise();
    }
  });
}
