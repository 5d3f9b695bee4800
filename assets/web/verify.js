// Verify opened from a receipt badge (/verify?hash=…): the badge left the answer in sessionStorage
// ("one.answer.<hash>", this tab only). Once the page is live and has checked the receipt from the log, put
// the answer in the output field and submit, so the output check runs too. The answer never enters Reflex
// state: the submit event carries it to the check, which hashes it. It travels JSON-encoded in a hidden field,
// exactly as answered (a textarea rewrites "\r" and drops NUL); the box shows it, and typing there wins.

const WAIT_MS = 30_000;

/** Call once at load: does nothing unless this is /verify?hash=… with an answer kept for that hash. */
export function carryAnswerToVerify() {
  if (location.pathname.replace(/\/$/, "") !== "/verify") return;
  const hash = new URLSearchParams(location.search).get("hash");
  const answer = hash && sessionStorage.getItem(`one.answer.${hash}`);
  if (answer === null || answer === undefined || !hash) return;
  const until = Date.now() + WAIT_MS;
  const attempt = () => {
    const receipts = document.getElementById("receipts-input");
    const output = document.getElementById("output-input");
    const exact = document.getElementById("output-json");
    const button = document.getElementById("verify-button");
    // live (the receipts box is read-only until hydrated) and the receipt from the log checked once
    const ready = receipts && !receipts.readOnly && receipts.value.toLowerCase().includes(hash.toLowerCase()) && output && exact && button && document.getElementById("verify-summary");
    if (!ready) {
      if (Date.now() < until) setTimeout(attempt, 100);
      return;
    }
    output.value = answer;
    exact.value = JSON.stringify(answer);
    output.addEventListener("input", () => (exact.value = ""), { once: true }); // the user's own text is checked instead
    button.click();
  };
  attempt();
}
