// MD-05: an App's model aliases (e.g. production): where each points, its move history, and moving it to
// the model on screen or rolling it back. Every move is a compare-and-set against what the screen shows,
// so two people promoting at once get the service's 409 instead of silently overwriting each other. Only the
// App's owner or an admin moves them: the owner comes from the builder (one GET of the App, shared with the
// builder's screens); when the builder does not answer, the controls stay on and the service's 403 is shown.
import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { useMe } from "../../auth/session";
import { builderApi } from "../../api/builder";
import { fetchAliases, modelKeys, moveAlias, rollBackAlias, type Gate } from "../../api/models";
import type { ModelDetail } from "../../api/types";
import { ErrorBox, GuardedButton, Loading, When } from "../../components/common";
import { mayPromote, mayRollBack } from "../../rules/aliases";

export default function Aliases({ model }: { model: ModelDetail }) {
  const { t } = useTranslation();
  const me = useMe();
  const client = useQueryClient();
  const aliases = useQuery({ queryKey: modelKeys.aliases(model.app_id), queryFn: () => fetchAliases(model.app_id) });
  const app = useQuery({ queryKey: ["builder", "app", model.app_id], queryFn: () => builderApi.getApp(model.app_id),
                         retry: false });
  const owner = app.data ? { owner: app.data.owner } : undefined;
  const [name, setName] = useState("production");
  const [metric, setMetric] = useState("");
  const [min, setMin] = useState("");
  const done = () => client.invalidateQueries({ queryKey: ["models"] });
  const move = useMutation({
    mutationFn: ({ alias, expected, gate }: { alias: string; expected: string | null; gate?: Gate }) =>
      moveAlias(model.app_id, alias, model.model_id, expected, gate),
    onSuccess: done,
  });
  const rollback = useMutation({ mutationFn: (alias: string) => rollBackAlias(model.app_id, alias), onSuccess: done });

  if (aliases.isPending) return <Loading />;
  if (aliases.isError) return <ErrorBox error={aliases.error} />;
  const list = aliases.data.aliases;
  const named = list.find((a) => a.alias === name.trim());
  const metrics = Object.keys((model.metrics as { summary?: Record<string, unknown> }).summary ?? {});
  const gate: Gate | undefined = metric && min.trim() !== "" && !Number.isNaN(Number(min)) ? { metric, min: Number(min) } : undefined;

  return (
    <section aria-labelledby="aliases-title" data-testid="aliases">
      <h2 id="aliases-title">{t("models.aliases")}</h2>
      <table>
        <caption className="sr-only">{t("models.aliasesCaption")}</caption>
        <thead>
          <tr>
            <th scope="col">{t("models.alias")}</th>
            <th scope="col">{t("models.version")}</th>
            <th scope="col">{t("models.movedBy")}</th>
            <th scope="col">{t("models.actions2")}</th>
          </tr>
        </thead>
        <tbody>
          {list.length === 0 && (
            <tr><td colSpan={4} className="muted">{t("models.noAliases")}</td></tr>
          )}
          {list.map((alias) => (
            <tr key={alias.alias} data-alias={alias.alias} data-model={alias.model_id}>
              <th scope="row">
                <span className="badge">{alias.alias}</span>
              </th>
              <td>
                <Link to={`/models/${encodeURIComponent(alias.model_id)}`}>v{alias.version}</Link>
                {alias.model_id === model.model_id && <span className="muted"> ({t("models.thisModel")})</span>}
              </td>
              <td>
                {alias.moved_by} · <When at={alias.moved_at} />
              </td>
              <td className="actions">
                <GuardedButton
                  verdict={mayPromote(me.data, model, alias.alias, alias, owner)}
                  busy={move.isPending}
                  label={t("models.moveHereLabel", { alias: alias.alias, version: model.version })}
                  onClick={() => move.mutate({ alias: alias.alias, expected: alias.model_id })}
                >
                  {t("models.moveHere")}
                </GuardedButton>{" "}
                <GuardedButton
                  verdict={mayRollBack(me.data, alias, owner)}
                  busy={rollback.isPending}
                  label={t("models.rollBackLabel", { alias: alias.alias })}
                  onClick={() => rollback.mutate(alias.alias)}
                >
                  {t("models.rollBack")}
                </GuardedButton>
                <details>
                  <summary>{t("models.history", { count: alias.history.length })}</summary>
                  <ol className="history" data-testid={`history-${alias.alias}`}>
                    {alias.history.map((h, i) => (
                      <li key={i} data-action={h.action} data-undone={h.undone}>
                        <When at={h.moved_at} /> {h.moved_by}: {t(`models.action.${h.action}`)}{" "}
                        {h.from_model_id ?? "—"} → {h.to_model_id}
                        {h.gate && ` (${t("models.gate")} ${h.gate.metric} ≥ ${h.gate.min ?? "—"}: ${h.gate_observed ?? "—"})`}
                        {h.undone && ` · ${t("models.undone")}`}
                      </li>
                    ))}
                  </ol>
                </details>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        className="inline-form"
        aria-label={t("models.promote")}
        onSubmit={(e) => {
          e.preventDefault();
          move.mutate({ alias: name.trim(), expected: named?.model_id ?? null, gate });
        }}
      >
        <label>
          {t("models.aliasName")} <input value={name} onChange={(e) => setName(e.target.value)} maxLength={63} />
        </label>
        <label>
          {t("models.gateMetric")}{" "}
          <select value={metric} onChange={(e) => setMetric(e.target.value)}>
            <option value="">{t("models.noGate")}</option>
            {metrics.map((m) => (
              <option key={m} value={m}>{m}</option>
            ))}
          </select>
        </label>
        {metric && (
          <label>
            {t("models.gateMin")} <input type="number" step="any" value={min} onChange={(e) => setMin(e.target.value)} />
          </label>
        )}
        <GuardedButton type="submit" verdict={mayPromote(me.data, model, name.trim(), named, owner)} busy={move.isPending}>
          {t("models.promote")}
        </GuardedButton>
      </form>
      {move.isError && <ErrorBox error={move.error} />}
      {rollback.isError && <ErrorBox error={rollback.error} />}
    </section>
  );
}
