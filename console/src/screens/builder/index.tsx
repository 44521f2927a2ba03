// The builder screens: their own routes under /builder (App.tsx mounts this lazily as one chunk). The Task
// editor, which carries React Flow, is a chunk of its own; elkjs loads on the first tidy.
import { lazy, Suspense } from "react";
import { Route, Routes } from "react-router";
import { Loading } from "../../components/common";
import AppList from "./AppList";
import AppPage from "./AppPage";
import Workflow from "./Workflow";

const TaskEditorPage = lazy(() => import("./TaskEditorPage"));

export default function BuilderRoutes() {
  return (
    <Suspense fallback={<Loading />}>
      <Routes>
        <Route index element={<AppList />} />
        <Route path=":appId" element={<AppPage />} />
        <Route path=":appId/tasks/:taskId" element={<TaskEditorPage />} />
        <Route path=":appId/workflow" element={<Workflow />} />
      </Routes>
    </Suspense>
  );
}
