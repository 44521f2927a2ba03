// RS-01…RS-06 (docs/spec.md §7): the cluster's figures, the nodes, the usage per workload and over time.
// The figures follow the SSE stream: every workload event refreshes the "scheduler" queries.
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { getNodes, getResources, getWorkloadUsage, NODES_KEY, RESOURCES_KEY, WORKLOAD_USAGE_KEY } from "../../api/resources";
import { useMe } from "../../auth/session";
import { ErrorBox, Loading } from "../../components/common";
import ClusterTable from "./ClusterTable";
import NodesTable from "./NodesTable";
import UsageTrend from "./UsageTrend";
import WorkloadUsageTable from "./WorkloadUsageTable";

function Part<T>({ query, children }: { query: { isPending: boolean; isError: boolean; error: unknown; data: T | undefined }; children: (data: T) => React.ReactNode }) {
  if (query.isPending) return <Loading />;
  if (query.isError) return <ErrorBox error={query.error} />;
  return <>{children(query.data as T)}</>;
}

export default function ResourcesPage() {
  const { t } = useTranslation();
  const me = useMe().data;
  const resources = useQuery({ queryKey: RESOURCES_KEY, queryFn: getResources });
  // node.status_changed (src/live/invalidation.ts) refreshes it when an admin drains or activates a node
  const nodes = useQuery({ queryKey: NODES_KEY, queryFn: getNodes });
  const workloads = useQuery({ queryKey: WORKLOAD_USAGE_KEY, queryFn: getWorkloadUsage });

  return (
    <section aria-labelledby="resources-title" className="resources">
      <h1 id="resources-title">{t("cluster.title")}</h1>
      <section aria-labelledby="overview-title">
        <h2 id="overview-title">{t("cluster.overview")}</h2>
        <Part query={resources}>{(data) => <ClusterTable resources={data} />}</Part>
      </section>
      <section aria-labelledby="nodes-title">
        <h2 id="nodes-title">{t("cluster.nodes")}</h2>
        <Part query={nodes}>{(data) => <NodesTable nodes={data.items} role={me?.role} />}</Part>
      </section>
      <section aria-labelledby="workloads-title">
        <h2 id="workloads-title">{t("cluster.workloads")}</h2>
        <Part query={workloads}>{(data) => <WorkloadUsageTable items={data.items} />}</Part>
      </section>
      <section aria-labelledby="chart-title">
        <h2 id="chart-title">{t("cluster.chart")}</h2>
        <UsageTrend />
      </section>
    </section>
  );
}
