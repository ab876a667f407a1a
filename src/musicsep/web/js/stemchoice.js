// The form's stem choice: every stem, karaoke (vocals and the rest), or the stems ticked here,
// one checkbox per stem of the selected model. The ticks follow the model: a stem the new model
// also has stays as it was, one it lacks drops out.

const $ = (id) => document.getElementById(id);
const radio = (value) => document.querySelector(`input[name="mode"][value="${value}"]`);

function tickedStems() {
  return [...$("stem-boxes").querySelectorAll("input:checked")].map((box) => box.value);
}

function stemBox(name, ticked) {
  const box = document.createElement("input");
  box.type = "checkbox";
  box.name = "stem";
  box.value = name;
  box.checked = ticked;
  box.setAttribute("aria-label", `Stem ${name}`);
  const label = document.createElement("label");
  label.append(box, ` ${name.replaceAll("_", " ")}`);
  return label;
}

function showMissing(missing) {
  $("stem-choice-error").hidden = !missing;
}

function showBoxes() {
  $("stem-boxes").hidden = !radio("choose").checked;
  showMissing(false);
}

/** Offer the selected model's `stems` (empty when the catalog does not know them: then only
 * "All stems" and karaoke can be asked for). */
export function offerStems(stems) {
  const ticked = new Set(tickedStems());
  $("stem-boxes").replaceChildren(...stems.map((name) => stemBox(name, ticked.has(name))));
  const karaoke = radio("karaoke");
  karaoke.disabled = stems.length > 0 && !stems.includes("vocals");
  radio("choose").disabled = stems.length === 0;
  if ([karaoke, radio("choose")].some((choice) => choice.disabled && choice.checked)) radio("all").checked = true;
  showBoxes();
}

/** The form fields for the choice (`two_stems`, or `stems` comma-separated as the API takes
 * them), or null with the message shown when "Choose stems" has nothing ticked. */
export function stemFields() {
  const mode = $("job-form").elements.mode.value;
  if (mode === "karaoke") return { two_stems: "vocals" };
  if (mode !== "choose") return {};
  const stems = tickedStems();
  showMissing(!stems.length);
  if (!stems.length) {
    $("stem-boxes").querySelector("input")?.focus();
    return null;
  }
  return { stems: stems.join(",") };
}

export function bindStemChoice() {
  for (const choice of document.querySelectorAll('input[name="mode"]')) choice.addEventListener("change", showBoxes);
  $("stem-boxes").addEventListener("change", () => { if (tickedStems().length) showMissing(false); });
}
