// MathJax 3 settings for pymdownx.arithmatex in "generic" mode. Arithmatex wraps every
// formula in an element of class "arithmatex" using \( \) for inline and \[ \] for display
// math, so MathJax is told to look only there (code blocks and prose are left alone).
// This file must load before tex-chtml.js, which reads window.MathJax when it starts and
// then typesets the page once.
//
// Material's "navigation.instant" feature is deliberately not enabled in mkdocs.yml: it
// swaps page content without a reload, which would need a re-typeset hook on document$
// that also skips the first page (clearing MathJax's glyph CSS after the start-up
// typeset leaves every formula blank).
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
