from services.kit.service import serve
from services.approval.main import create_app

serve(create_app())
