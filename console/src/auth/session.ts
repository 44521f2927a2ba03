// Who is logged in (GET /api/auth/me), shared by every screen through react-query's cache.
import { useQuery } from "@tanstack/react-query";
import { ApiError, get } from "../api/client";
import type { Me } from "../api/types";

export const ME_KEY = ["me"] as const;

export function useMe() {
  return useQuery<Me, ApiError>({
    queryKey: ME_KEY,
    queryFn: () => get<Me>("/api/auth/me"),
    retry: (count, error) => !(error instanceof ApiError && error.status === 401) && count < 2,
    staleTime: 60_000,
  });
}
