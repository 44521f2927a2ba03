// A new API token's secret, shown once: the gateway keeps only its hash, so once this box is dismissed
// (or the screen left) nobody can see it again. Copy puts it on the clipboard.
import { useState } from "react";
import { useTranslation } from "react-i18next";
import type { CreatedToken } from "../../api/admin";

export default function CreatedTokenBox({ token, onDismiss }: { token: CreatedToken; onDismiss: () => void }) {
  const { t } = useTranslation();
  const [copied, setCopied] = useState<"yes" | "failed" | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token.token);
      setCopied("yes");
    } catch {
      setCopied("failed"); // no clipboard permission (an insecure origin): the value can still be selected
    }
  };
  return (
    <section className="secret" aria-labelledby="secret-title" data-testid="created-token" role="region">
      <h2 id="secret-title">{t("admin.tokens.createdTitle")}</h2>
      <p className="warning">{t("admin.tokens.createdHint")}</p>
      <label>
        {t("admin.tokens.secret")} ({token.name}, {t(`role.${token.role}`)})
        <input readOnly value={token.token} data-testid="token-secret" onFocus={(e) => e.currentTarget.select()} size={60} />
      </label>
      <div className="buttons">
        <button type="button" className="primary" onClick={() => void copy()}>{t("admin.tokens.copy")}</button>
        <button type="button" onClick={onDismiss}>{t("admin.tokens.dismiss")}</button>
      </div>
      <p role="status" aria-live="polite">
        {copied === "yes" ? t("admin.tokens.copied") : copied === "failed" ? t("admin.tokens.copyFailed") : null}
      </p>
    </section>
  );
}
