// TR-01…TR-06: pick a ready App, the request filled from it (resources from its largest component, the RL
// parameters from its training config), editable; limits and fallbacks from the trainer's request model
// in the OpenAPI document, the service's own messages shown at the field they name; submit → its detail.
import { useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { inputLimits, property, rangeText, useOpenApi } from "../../api/openapi";
import type { JsonSchema } from "../../api/openapi";
import { trainer, trainingKeys } from "../../api/training";
import type { TrainingConfig } from "../../api/training";
import type { Priority } from "../../api/types";
import { useMe } from "../../auth/session";
import { ErrorBox, Loading, ResourceText } from "../../components/common";
import { Field } from "../../components/Field";
import { errorAt, fieldErrors, type FieldErrors } from "../../forms/fieldErrors";
import { writer } from "../../rules/permissions";
import { blankForm, filledForm, payloadOf, REFUSAL_FIELDS, RL_PARAMS, type RlParam, type SubmitForm } from "./submitForm";

const PARAMS = "trainer.TrainingParams";
const RESOURCES = "trainer.ResourceRequest";
const REQUEST = "trainer.SubmitTraining";
const SEED_DEFAULTS = "builder.TrainingConfig"; // the spec's training_config model: §4.2's defaults

export default function Submit() {
  const { t } = useTranslation();
  const me = useMe().data;
  const navigate = useNavigate();
  const client = useQueryClient();
  const [params] = useSearchParams();
  const doc = useOpenApi().data;
  const priorities = (property(doc, REQUEST, "priority").enum as Priority[] | undefined) ?? ["high", "normal", "low"];
  const [form, setForm] = useState<SubmitForm>(() => ({ ...blankForm(), app_id: params.get("app") ?? "" }));
  const [local, setLocal] = useState<FieldErrors>({});
  const filledFor = useRef<string>("");

  const apps = useQuery({ queryKey: trainingKeys.apps(""), queryFn: () => trainer.apps() });
  const app = useQuery({ queryKey: trainingKeys.app(form.app_id), queryFn: () => trainer.app(form.app_id), enabled: !!form.app_id });
  const defaults = useQuery({
    queryKey: trainingKeys.defaults(form.app_id, form.spec_version),
    queryFn: () => trainer.defaults(form.app_id, form.spec_version || undefined),
    enabled: !!form.app_id,
  });

  // fill once per App version chosen: a refetch (a live event) must not overwrite what was typed
  useEffect(() => {
    const d = defaults.data;
    if (!d || !doc) return;
    const key = `${d.app_id}@${form.spec_version || "latest"}`;
    if (filledFor.current === key) return;
    filledFor.current = key;
    const fallback = Object.fromEntries(RL_PARAMS.map((p) => [p, property(doc, SEED_DEFAULTS, p).default])) as TrainingConfig;
    setForm((f) => ({ ...filledForm(f, d, fallback), spec_version: f.spec_version }));
    setLocal({});
  }, [defaults.data, doc, form.spec_version]);

  const submit = useMutation({
    mutationFn: async () => {
      // pinned to the version whose defaults are shown, so a newer spec arriving meanwhile is not what runs
      const { body, errors } = payloadOf({ ...form, spec_version: form.spec_version || defaults.data?.spec_version || "" });
      if (!body) throw errors;
      return trainer.submit(body);
    },
    onMutate: () => setLocal({}),
    onError: (error) => {
      if (error && typeof error === "object" && !(error instanceof Error)) setLocal(error as FieldErrors);
    },
    onSuccess: (submitted) => {
      void client.invalidateQueries({ queryKey: ["trainer"] });
      navigate(`/trainer/${encodeURIComponent(submitted.workload_id)}`);
    },
  });

  const verdict = writer(me?.role);
  const errors = submit.error instanceof Error ? fieldErrors(submit.error, REFUSAL_FIELDS) : local;
  const locked = !!verdict || submit.isPending;
  const set = (key: keyof SubmitForm) => (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value });
  const setParam = (key: RlParam) => (e: { target: { value: string } }) =>
    setForm({ ...form, params: { ...form.params, [key]: e.target.value } });
  const hint = (schema: JsonSchema, extra?: string) => [rangeText(schema), extra].filter(Boolean).join(" · ") || undefined;
  const seedDefault = (p: RlParam) => {
    const value = property(doc, SEED_DEFAULTS, p).default;
    return value === undefined ? undefined : t("submit.seedDefault", { value });
  };
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    submit.mutate();
  };

  return (
    <section aria-labelledby="submit-title">
      <p><Link to="/trainer">← {t("submit.history")}</Link></p>
      <h1 id="submit-title">{t("submit.title")}</h1>
      {verdict && (
        <p className="reason-box" role="note" data-testid="form-disabled-reason">{t(verdict.reason, verdict.values)}</p>
      )}
      <form className="form" onSubmit={onSubmit} noValidate aria-labelledby="submit-title" data-testid="submit-form">
        <fieldset disabled={locked}>
          <legend>{t("submit.appLegend")}</legend>
          {apps.isError && <ErrorBox error={apps.error} />}
          <Field label={t("submit.app")} error={errorAt(errors, "app_id")} hint={t("submit.appHint")}>
            <select
              value={form.app_id}
              onChange={(e) => {
                filledFor.current = "";
                setForm({ ...form, app_id: e.target.value, spec_version: "" });
              }}
            >
              <option value="">{t("submit.chooseApp")}</option>
              {apps.data?.items.map((a) => (
                <option key={a.app_id} value={a.app_id}>
                  {t("submit.appOption", { name: a.name, id: a.app_id, version: a.version, tasks: a.task_count, components: a.component_count })}
                </option>
              ))}
            </select>
          </Field>
          {app.data?.versions && app.data.versions.length > 1 && (
            <Field label={t("submit.specVersion")} error={errorAt(errors, "spec_version")}>
              <select value={form.spec_version} onChange={(e) => { filledFor.current = ""; setForm({ ...form, spec_version: e.target.value }); }}>
                <option value="">{t("submit.latest", { version: app.data.version })}</option>
                {[...app.data.versions].reverse().map((v) => <option key={v} value={v}>{v}</option>)}
              </select>
            </Field>
          )}
          <Field label={t("submit.name")} error={errorAt(errors, "name")} hint={t("submit.nameHint")}>
            <input value={form.name} onChange={set("name")} {...inputLimits(property(doc, REQUEST, "name"))} />
          </Field>
          <Field label={t("submit.priority")} error={errorAt(errors, "priority")}>
            <select value={form.priority} onChange={set("priority")}>
              {priorities.map((p) => <option key={p} value={p}>{t(`priority.${p}`)}</option>)}
            </select>
          </Field>
        </fieldset>

        {form.app_id && defaults.isPending && <Loading />}
        {defaults.isError && <ErrorBox error={defaults.error} />}
        {defaults.data && (
          <>
            <fieldset disabled={locked} data-testid="resources-fieldset">
              <legend>{t("submit.resourcesLegend")}</legend>
              <p className="muted" data-testid="resources-source">
                {t("submit.filledFrom", { name: defaults.data.source_component.name, id: defaults.data.source_component.component_id })}{" "}
                (<ResourceText resources={defaults.data} />)
              </p>
              <div className="grid">
                <Field label={t("submit.gpuType")} error={errorAt(errors, "resources.gpu_type")}>
                  <input value={form.gpu_type} onChange={set("gpu_type")} {...inputLimits(property(doc, RESOURCES, "gpu_type"))} />
                </Field>
                <Field label={t("submit.gpuCount")} error={errorAt(errors, "resources.gpu_count")} hint={hint(property(doc, RESOURCES, "gpu_count"))}>
                  <input type="number" value={form.gpu_count} onChange={set("gpu_count")} {...inputLimits(property(doc, RESOURCES, "gpu_count"))} />
                </Field>
                <Field label={t("submit.memory")} error={errorAt(errors, "resources.memory")} hint={t("submit.memoryHint")}>
                  <input value={form.memory} onChange={set("memory")} />
                </Field>
                <Field label={t("submit.cpu")} error={errorAt(errors, "resources.cpu")} hint={hint(property(doc, RESOURCES, "cpu"), t("submit.optional"))}>
                  <input type="number" value={form.cpu} onChange={set("cpu")} {...inputLimits(property(doc, RESOURCES, "cpu"))} />
                </Field>
                <Field label={t("submit.maxRuntime")} error={errorAt(errors, "resources.max_runtime")}
                  hint={t("submit.runtimeHint", { value: String(property(doc, RESOURCES, "max_runtime").default ?? "") })}>
                  <input value={form.max_runtime} onChange={set("max_runtime")} />
                </Field>
              </div>
            </fieldset>

            <fieldset disabled={locked}>
              <legend>{t("submit.paramsLegend")}</legend>
              <div className="grid">
                {RL_PARAMS.map((p) => (
                  <Field key={p} label={t(`submit.params.${p}`)} error={errorAt(errors, `training_config.${p}`)}
                    hint={hint(property(doc, PARAMS, p), seedDefault(p))}>
                    <input type="number" value={form.params[p]} onChange={setParam(p)} {...inputLimits(property(doc, PARAMS, p))} />
                  </Field>
                ))}
              </div>
            </fieldset>

            <fieldset disabled={locked}>
              <legend>{t("submit.envLegend")}</legend>
              <Field label={t("submit.simulationSeed")} error={errorAt(errors, "training_config.simulation_seed")}
                hint={hint(property(doc, PARAMS, "simulation_seed"))}>
                <input type="number" value={form.simulation_seed} onChange={set("simulation_seed")} {...inputLimits(property(doc, PARAMS, "simulation_seed"))} />
              </Field>
              <Field label={t("submit.envConfig")} error={errorAt(errors, "training_config.env_config")} hint={t("submit.jsonHint")}>
                <textarea rows={4} className="mono" value={form.env_config} onChange={set("env_config")} />
              </Field>
              <Field label={t("submit.envVars")} error={errorAt(errors, "env_vars")} hint={t("submit.envVarsHint")}>
                <textarea rows={3} className="mono" value={form.env_vars} onChange={set("env_vars")} placeholder="LOG_LEVEL=debug" />
              </Field>
            </fieldset>

            <fieldset disabled={locked}>
              <legend>{t("submit.rewardLegend")}</legend>
              <Field label={t("submit.rewardParams")} error={errorAt(errors, "training_config.reward_params")} hint={t("submit.rewardHint")}>
                <textarea rows={4} className="mono" value={form.reward_params} onChange={set("reward_params")} />
              </Field>
            </fieldset>
          </>
        )}
        {errors[""] && <div role="alert" className="error" data-testid="form-error">{errors[""]}</div>}
        <div className="buttons">
          <button type="submit" className="primary" disabled={locked || !defaults.data}>
            {submit.isPending ? t("submit.submitting") : t("submit.submit")}
          </button>
        </div>
      </form>
    </section>
  );
}
