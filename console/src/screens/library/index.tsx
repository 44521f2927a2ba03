// The library screens: their own routes under /library (App.tsx mounts this lazily as one chunk).
import { Route, Routes } from "react-router";
import LibraryList from "./List";
import ComponentDetail from "./Detail";
import { EditComponent, RegisterComponent } from "./ComponentForm";

export default function LibraryRoutes() {
  return (
    <Routes>
      <Route index element={<LibraryList />} />
      <Route path="new" element={<RegisterComponent />} />
      <Route path=":id" element={<ComponentDetail />} />
      <Route path=":id/edit" element={<EditComponent />} />
    </Routes>
  );
}
