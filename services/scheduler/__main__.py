from services.kit.service import serve
from services.scheduler.main import create_app

serve(create_app())
