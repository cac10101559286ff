// Lakka News: the parts of a page that differ per reader or change often
// are fetched by the reader's browser, so that the page itself stays the
// same for everyone and can be cached by the edge.
(function () {
	"use strict";
	var d = document;

	// The most-read list is a fragment with its own short lifetime.
	d.querySelectorAll("[data-fragment]").forEach(function (el) {
		fetch(el.getAttribute("data-fragment")).then(function (r) {
			return r.ok ? r.text() : "";
		}).then(function (html) {
			if (html) el.innerHTML = html;
		});
	});

	// One view, counted by the origin even when the edge served the page.
	var art = d.querySelector("[data-article]");
	if (art && navigator.sendBeacon) {
		navigator.sendBeacon("/views/" + art.getAttribute("data-article"));
	}

	// The comment form gets its CSRF token only when a reader starts to
	// write: from an uncacheable endpoint that also sets the matching cookie
	// (Path=/comments), never on the cached page.
	var form = d.querySelector("form[data-csrf]");
	if (form) {
		var once = function () {
			form.removeEventListener("focusin", once);
			fetch(form.getAttribute("data-csrf"), { credentials: "same-origin" }).then(function (r) {
				return r.json();
			}).then(function (j) {
				form.elements.csrf_token.value = j.token;
			});
		};
		form.addEventListener("focusin", once);
	}
})();
