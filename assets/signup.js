// The sign-up form (dashboard/pages/auth.py, #register-form): post it, then sign in with
// the same email and password. Sign-up answers a new email and a taken one alike (303 to
// /login?registered=1, no session), so a new person lands signed in this way and a taken
// email simply fails to sign in. Anything else the route answers is shown as it is. The
// password goes only to the two same-site routes, never through Reflex.
(() => {
  if (window.__platformSignup) return;
  window.__platformSignup = true;

  function signIn(email, password) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/auth/login";
    form.hidden = true;
    for (const [name, value] of [["email", email], ["password", password]]) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit(); // a real navigation: the session cookie comes back with its answer
  }

  document.addEventListener(
    "submit",
    async (event) => {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || form.id !== "register-form") return;
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      const data = new FormData(form);
      let landed;
      try {
        const answer = await fetch(form.action, {
          method: "POST",
          body: new URLSearchParams(data),
          credentials: "same-origin",
          cache: "no-store",
        });
        if (!answer.redirected) throw new Error("not the route's redirect");
        landed = new URL(answer.url);
      } catch (e) {
        form.submit(); // let the browser post it and show whatever comes back
        return;
      }
      const registered =
        landed.pathname.replace(/\/$/, "") === "/login" && landed.searchParams.get("registered") === "1";
      if (!registered) {
        window.location.assign(landed.pathname + landed.search); // the sign-up page, with its message
        return;
      }
      signIn(String(data.get("email") || ""), String(data.get("password") || ""));
    },
    true,
  );
})();
