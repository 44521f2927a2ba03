// The resources screens: their own routes under /resources (App.tsx mounts this lazily as one chunk).
import { Route, Routes } from "react-router";
import ResourcesPage from "./ResourcesPage";

export default function ResourcesRoutes() {
  return (
    <Routes>
      <Route index element={<ResourcesPage />} />
    </Routes>
  );
}
