// CL-01 register and CL-04 edit: one form; its limits and defaults come from the library's request model
// in the OpenAPI document, and a refusal shows the service's message at the field it names. Someone who may
// not change the component sees the form disabled with the reason (the service would refuse it too).
import { useEffect, useState } from "react";
import type { FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { COMPONENT_TYPES, library, libraryKeys } from "../../api/library";
import type { ComponentDetail } from "../../api/library";
import { inputLimits, property, rangeText, useOpenApi } from "../../api/openapi";
import { useMe } from "../../auth/session";
import { ErrorBox, Loading } from "../../components/common";
import { Field } from "../../components/Field";
import { errorAt, fieldErrors, type FieldErrors } from "../../forms/fieldErrors";
import { blankForm, changesOf, formOf, registrationOf, type ComponentForm as Form } from "./componentForm";
import { mayEdit, mayRegister } from "./rules";

const MODEL = "library.ComponentRegistration";

export function RegisterComponent() {
  return <ComponentForm />;
}

export function EditComponent() {
  const { id = "" } = useParams();
  const detail = useQuery({ queryKey: libraryKeys.detail(id), queryFn: () => library.detail(id) });
  if (detail.isPending) return <Loading />;
  if (detail.isError) return <ErrorBox error={detail.error} />;
  return <ComponentForm current={detail.data} />;
}

function ComponentForm({ current }: { current?: ComponentDetail }) {
  const { t } = useTranslation();
  const me = useMe().data;
  const navigate = useNavigate();
  const client = useQueryClient();
  const openapi = useOpenApi();
  const doc = openapi.data;
  const limit = (path: string[]) => {
    let schema = property(doc, MODEL, path[0]);
    for (const part of path.slice(1)) schema = property(doc, schema, part);
    return schema;
  };
  const [form, setForm] = useState<Form>(() => (current ? formOf(current) : blankForm({})));
  const [local, setLocal] = useState<FieldErrors>({});
  const [nothing, setNothing] = useState(false);
  // the schema's defaults arrive after the first render: a blank form takes them once
  useEffect(() => {
    if (!current && doc) {
      setForm((f) => ({ ...f, ...pick(blankForm({ version: limit(["version"]).default, type: limit(["type"]).default }), f) }));
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [doc, current]);

  const save = useMutation({
    mutationFn: async () => {
      if (current) {
        const { changes, errors } = changesOf(form, current);
        if (errors) throw errors;
        if (!changes || Object.keys(changes).length === 0) return null;
        return library.update(current.component_id, changes);
      }
      const parsed = registrationOf(form);
      if (parsed.errors) throw parsed.errors;
      return library.register(parsed.body);
    },
    onMutate: () => {
      setLocal({});
      setNothing(false);
    },
    onError: (error) => {
      if (error && typeof error === "object" && !(error instanceof Error)) setLocal(error as FieldErrors);
    },
    onSuccess: (saved) => {
      if (!saved) {
        setNothing(true);
        return;
      }
      // the detail shows what was saved at once; the lists and the rest refetch
      client.setQueryData(libraryKeys.detail(saved.component_id), saved);
      void client.invalidateQueries({ queryKey: libraryKeys.all, predicate: (q) => q.queryKey[1] !== "component" || q.queryKey[2] !== saved.component_id });
      navigate(`/library/${encodeURIComponent(saved.component_id)}`);
    },
  });

  const verdict = current ? mayEdit(me, current.owner) : mayRegister(me);
  const errors: FieldErrors = save.error instanceof Error ? fieldErrors(save.error) : local;
  const set = (key: keyof Form) => (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  const title = current ? t("library.editTitle", { name: current.name }) : t("library.registerTitle");
  const hint = (path: string[], extra?: string) => [rangeText(limit(path)), extra].filter(Boolean).join(" · ") || undefined;

  return (
    <section aria-labelledby="component-form-title">
      <p>
        <Link to={current ? `/library/${encodeURIComponent(current.component_id)}` : "/library"}>← {t("common.back")}</Link>
      </p>
      <h1 id="component-form-title">{title}</h1>
      {verdict && (
        <p className="reason-box" role="note" data-testid="form-disabled-reason">
          {t(verdict.reason, verdict.values)}
        </p>
      )}
      <form className="form" onSubmit={submit} noValidate aria-labelledby="component-form-title">
        <fieldset disabled={!!verdict || save.isPending}>
          <legend>{t("library.basics")}</legend>
          <Field label={t("library.name")} error={errorAt(errors, "name")} hint={hint(["name"])}>
            <input value={form.name} onChange={set("name")} required {...inputLimits(limit(["name"]))} />
          </Field>
          <Field label={t("library.type")} error={errorAt(errors, "type")}>
            <select value={form.type} onChange={set("type")}>
              {((limit(["type"]).enum as string[] | undefined) ?? [...COMPONENT_TYPES]).map((value) => (
                <option key={value} value={value}>{t(`library.types.${value}`, { defaultValue: value })}</option>
              ))}
            </select>
          </Field>
          <Field
            label={t("library.version")}
            error={errorAt(errors, "version")}
            hint={current ? t("library.versionHint", { version: current.version }) : undefined}
          >
            <input value={form.version} onChange={set("version")} placeholder={current ? current.version : undefined} />
          </Field>
          <Field label={t("library.description")} error={errorAt(errors, "description")} hint={hint(["description"])}>
            <textarea rows={3} value={form.description} onChange={set("description")} {...inputLimits(limit(["description"]))} />
          </Field>
        </fieldset>
        <fieldset disabled={!!verdict || save.isPending}>
          <legend>{t("library.imageLegend")}</legend>
          <Field label={t("library.registry")} error={errorAt(errors, "image.registry")}>
            <input value={form.registry} onChange={set("registry")} placeholder="registry.avatar.io/my-component" required
              {...inputLimits(limit(["image", "registry"]))} />
          </Field>
          <Field label={t("library.tag")} error={errorAt(errors, "image.tag")}>
            <input value={form.tag} onChange={set("tag")} placeholder="1.0" required {...inputLimits(limit(["image", "tag"]))} />
          </Field>
        </fieldset>
        <fieldset disabled={!!verdict || save.isPending}>
          <legend>{t("library.resources")}</legend>
          <Field label={t("library.gpuType")} error={errorAt(errors, "resources.gpu_type")}>
            <input value={form.gpu_type} onChange={set("gpu_type")} placeholder="A100" {...inputLimits(limit(["resources", "gpu_type"]))} />
          </Field>
          <Field label={t("library.gpuCount")} error={errorAt(errors, "resources.gpu_count")} hint={hint(["resources", "gpu_count"])}>
            <input type="number" value={form.gpu_count} onChange={set("gpu_count")} {...inputLimits(limit(["resources", "gpu_count"]))} />
          </Field>
          <Field label={t("library.memory")} error={errorAt(errors, "resources.memory")} hint={t("library.memoryHint")}>
            <input value={form.memory} onChange={set("memory")} placeholder="64GB" />
          </Field>
        </fieldset>
        <fieldset disabled={!!verdict || save.isPending}>
          <legend>{t("library.run")}</legend>
          <Field label={t("library.command")} error={errorAt(errors, "command")} hint={t("library.commandHint")}>
            <textarea rows={3} value={form.command} onChange={set("command")} className="mono" />
          </Field>
          <Field label={t("library.params")} error={errorAt(errors, "params")} hint={t("library.paramsHint")}>
            <textarea rows={5} value={form.params} onChange={set("params")} className="mono" />
          </Field>
        </fieldset>
        {errors[""] && <div role="alert" className="error" data-testid="form-error">{errors[""]}</div>}
        {save.error instanceof Error && !errors[""] && Object.keys(errors).length === 0 && <ErrorBox error={save.error} />}
        {nothing && <p className="notice" role="status">{t("library.nothingChanged")}</p>}
        <div className="buttons">
          <button type="submit" className="primary" disabled={!!verdict || save.isPending}>
            {current ? t("library.saveVersion") : t("library.registerSubmit")}
          </button>
        </div>
      </form>
    </section>
  );
}

/** the fields of `defaults` the user has not typed into yet */
function pick(defaults: Form, typed: Form): Partial<Form> {
  const blank = blankForm({});
  return Object.fromEntries(
    (Object.keys(defaults) as (keyof Form)[]).filter((key) => typed[key] === blank[key]).map((key) => [key, defaults[key]]),
  );
}
