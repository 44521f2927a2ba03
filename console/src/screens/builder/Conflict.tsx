// 409 edit_conflict: someone else edited this App since it was loaded here. The builder's message, and
// the way out: load the App as it is now (the edit was not applied).
import { useTranslation } from "react-i18next";

export function ConflictBanner({ message, onReload }: { message: string | null; onReload: () => void }) {
  const { t } = useTranslation();
  if (!message) return null;
  return (
    <div className="banner conflict" role="alert" data-testid="edit-conflict">
      <strong>{t("builder.conflict.title")}</strong> {message}{" "}
      <button type="button" onClick={onReload}>{t("builder.conflict.reload")}</button>
    </div>
  );
}
