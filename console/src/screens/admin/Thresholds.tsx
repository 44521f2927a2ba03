// The approval thresholds (docs/spec.md §5.1): GET/PUT /api/approval/thresholds, admins only.
import { useEffect, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { getThresholds, putThresholds, THRESHOLDS_KEY } from "../../api/admin";
import { ErrorBox, Loading, When } from "../../components/common";

export default function Thresholds() {
  const { t } = useTranslation();
  const client = useQueryClient();
  const current = useQuery({ queryKey: THRESHOLDS_KEY, queryFn: getThresholds });
  const [gpu, setGpu] = useState("");
  const [memory, setMemory] = useState("");
  const [saved, setSaved] = useState<string | null>(null);
  useEffect(() => {
    if (current.data) {
      setGpu(String(current.data.gpu_count));
      setMemory(current.data.memory);
    }
  }, [current.data]);
  const save = useMutation({
    mutationFn: () => putThresholds({ gpu_count: Number(gpu), memory: memory.trim() }),
    onSuccess: (value) => {
      setSaved(t("admin.thresholds.saved", { gpu: String(value.gpu_count), memory: value.memory }));
      client.setQueryData(THRESHOLDS_KEY, value);
      void client.invalidateQueries({ queryKey: ["approval"] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setSaved(null);
    save.mutate();
  };

  return (
    <section aria-labelledby="thresholds-title">
      <h1 id="thresholds-title">{t("admin.thresholds.title")}</h1>
      <p className="muted">{t("admin.thresholds.hint")}</p>
      {current.isPending ? (
        <Loading />
      ) : current.isError ? (
        <ErrorBox error={current.error} />
      ) : (
        <form onSubmit={submit} className="form" data-testid="thresholds-form">
          <label>
            {t("admin.thresholds.gpu")}
            <input type="number" min={1} max={1024} required value={gpu} onChange={(e) => setGpu(e.target.value)} />
          </label>
          <label>
            {t("admin.thresholds.memory")}
            <input type="text" required value={memory} onChange={(e) => setMemory(e.target.value)} />
          </label>
          <div className="buttons">
            <button type="submit" className="primary" disabled={save.isPending}>{t("admin.thresholds.save")}</button>
          </div>
          <ErrorBox error={save.error} />
          <p role="status" aria-live="polite">{saved}</p>
          <p className="muted">
            {t("admin.thresholds.updated")}: {current.data.updated_by ?? "—"}, <When at={current.data.updated_at} />
          </p>
        </form>
      )}
    </section>
  );
}
