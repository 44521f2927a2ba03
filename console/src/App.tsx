import { lazy, Suspense } from "react";
import { Navigate, Route, Routes } from "react-router";
import Shell from "./components/Shell";
import { Loading } from "./components/common";

// every screen is its own chunk: the first load carries the shell and the login only
const Login = lazy(() => import("./screens/Login"));
const Queue = lazy(() => import("./screens/Queue"));
const TrainerHistory = lazy(() => import("./screens/TrainerHistory"));
const TrainerDetail = lazy(() => import("./screens/TrainerDetail"));
const Approvals = lazy(() => import("./screens/Approvals"));
const ApprovalDetail = lazy(() => import("./screens/ApprovalDetail"));
const Models = lazy(() => import("./screens/Models"));
const ModelDetail = lazy(() => import("./screens/ModelDetail"));
const ModelCompare = lazy(() => import("./screens/models/Compare"));
const TrainingSubmit = lazy(() => import("./screens/training/Submit"));
const TrainingCompare = lazy(() => import("./screens/training/Compare"));
// each area below owns its nested routes (screens/<area>/index.tsx)
const Builder = lazy(() => import("./screens/builder"));
const Library = lazy(() => import("./screens/library"));
const Resources = lazy(() => import("./screens/resources"));
const Admin = lazy(() => import("./screens/admin"));
const Runs = lazy(() => import("./screens/runs"));

export default function App() {
  return (
    <Suspense fallback={<Loading />}>
      <Routes>
        <Route path="/login" element={<Login />} />
        <Route element={<Shell />}>
          <Route index element={<Navigate to="/queue" replace />} />
          <Route path="queue" element={<Queue />} />
          <Route path="builder/*" element={<Builder />} />
          <Route path="library/*" element={<Library />} />
          <Route path="trainer" element={<TrainerHistory />} />
          <Route path="trainer/new" element={<TrainingSubmit />} />
          <Route path="trainer/compare" element={<TrainingCompare />} />
          <Route path="trainer/:id" element={<TrainerDetail />} />
          <Route path="approvals" element={<Approvals />} />
          <Route path="approvals/:id" element={<ApprovalDetail />} />
          <Route path="models" element={<Models />} />
          <Route path="models/compare" element={<ModelCompare />} />
          <Route path="models/:id" element={<ModelDetail />} />
          <Route path="resources/*" element={<Resources />} />
          <Route path="runs/*" element={<Runs />} />
          <Route path="admin/*" element={<Admin />} />
          <Route path="*" element={<Navigate to="/queue" replace />} />
        </Route>
      </Routes>
    </Suspense>
  );
}
